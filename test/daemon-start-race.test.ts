// Several `skyfarm daemon start` at the same moment (two commands, a double click in Blender): one
// daemon takes the state dir's lock, and every start reports that daemon instead of failing on the
// ones that lost the lock.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { cliEnv, runCli } from './helpers/cli.js';

t.test('concurrent daemon starts all succeed with one daemon', async (t) => {
  const home = join(t.testdir({}), 'home');
  const env = cliEnv(t, home);
  const starts = await Promise.all([1, 2, 3].map(() => runCli(['daemon', 'start', '--json'], { env })));
  for (const [i, start] of starts.entries())
    t.equal(start.code, 0, `start ${i + 1} exits 0 (stderr: ${start.stderr.slice(-300)})`);
  const pids = new Set(starts.map((start) => (JSON.parse(start.stdout) as { pid: number }).pid));
  t.equal(pids.size, 1, 'all name the same daemon');
  const running = JSON.parse(readFileSync(join(home, 'daemon.json'), 'utf8')) as { pid: number };
  t.same([...pids], [running.pid], 'the one in daemon.json');
  const status = await runCli(['daemon', 'status', '--json'], { env });
  t.match(JSON.parse(status.stdout), { running: true, pid: running.pid }, 'which status reports');
});
