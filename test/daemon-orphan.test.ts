// A background daemon whose state dir is deleted shuts itself down instead of lingering unreachable.
import t from 'tap';
import { join } from 'node:path';
import { readFileSync, rmSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { cliEnv, runCli } from './helpers/cli.js';
import { processAlive } from '../daemon/src/config/daemon-lock.js';

t.test('deleting the state dir stops the daemon', async (t) => {
  const home = join(t.testdir({}), 'home');
  const env = cliEnv(t, home);
  const started = await runCli(['daemon', 'start', '--json'], { env });
  t.equal(started.code, 0);
  const pid = (JSON.parse(readFileSync(join(home, 'daemon.json'), 'utf8')) as { pid: number }).pid;
  t.ok(processAlive(pid), 'the daemon runs');
  rmSync(home, { recursive: true, force: true });
  const deadline = Date.now() + 30_000;
  while (processAlive(pid) && Date.now() < deadline) await sleep(200);
  t.notOk(processAlive(pid), 'it exited by itself');
});
