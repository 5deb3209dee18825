// A daemon killed with SIGKILL mid-render whose parent does not reap it (a zombie: its pid still
// "exists") never blocks the next one: `skyfarm daemon start` succeeds at once, the new daemon
// replaces the dead one's daemon.json (said once in its log) and finishes the job (issue #15).
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { blenderSkip, makeScene } from './helpers/scenes.js';
import { cliEnv, runCli } from './helpers/cli.js';
import { processState, startUnreapedDaemon } from './helpers/unreaped-daemon.js';
import { until } from './helpers/until.js';
import { processAlive } from '../daemon/src/config/daemon-lock.js';

const linuxOnly = process.platform === 'linux' ? false : 'zombie states are read from /proc (Linux)';

t.test(
  'skyfarm daemon start succeeds while the killed daemon is a zombie',
  { skip: linuxOnly || blenderSkip },
  async (t) => {
    const dir = t.testdir({});
    const home = join(dir, 'home');
    const env = cliEnv(t, home);
    const scene = await makeScene(dir, { frames: [1, 4], outputPath: '//out/z_####' });
    const first = await startUnreapedDaemon(t, env, join(dir, 'first-daemon.log'));

    const submitted = await runCli(['render', scene, '--chunk-size', '1', '--json'], { env, cwd: dir });
    t.equal(submitted.code, 0, `render submitted (${submitted.stderr})`);
    const jobId = (JSON.parse(submitted.stdout) as { id: string }).id;
    type Snapshot = { state: string; framesDone: number; framesFailed: number };
    const status = async (): Promise<Snapshot> =>
      JSON.parse((await runCli(['status', jobId, '--json'], { env })).stdout) as Snapshot;
    let before = await status();
    const deadline = Date.now() + 120_000;
    while (before.framesDone < 1 && Date.now() < deadline) {
      await sleep(200);
      before = await status();
    }
    t.ok(
      before.framesDone >= 1 && before.state === 'rendering',
      `rendering (${before.framesDone} of 4 done)`,
    );

    process.kill(first.pid, 'SIGKILL');
    await until('the killed daemon to be a zombie', () => processState(first.pid) === 'Z', 10_000);
    t.notOk(processAlive(first.pid), 'processAlive counts a zombie as not running');

    const whileZombie = await runCli(['daemon', 'status', '--json'], { env });
    t.equal(whileZombie.code, 4, 'daemon status: not running');
    t.match(JSON.parse(whileZombie.stdout), { running: false });

    const started = await runCli(['daemon', 'start', '--json'], { env });
    t.equal(started.code, 0, `daemon start succeeds (stderr: ${started.stderr})`);
    const second = JSON.parse(started.stdout) as { pid: number; running: boolean };
    t.not(second.pid, first.pid, 'a new daemon runs');
    t.notMatch(
      started.stdout + started.stderr,
      /already running|Warning|\(node:\d+\)/,
      'no refusal, no Node warning',
    );
    t.equal(processState(first.pid), 'Z', 'the old daemon was still an unreaped zombie all along');

    const info = JSON.parse(readFileSync(join(home, 'daemon.json'), 'utf8')) as { pid: number };
    t.equal(info.pid, second.pid, "daemon.json is the new daemon's");
    const replaced = readFileSync(join(home, 'daemon.log'), 'utf8')
      .split('\n')
      .filter((line) => /ended without stopping cleanly/.test(line));
    t.equal(replaced.length, 1, 'the replacement is said once in the log');
    t.match(replaced[0], new RegExp(`pid ${first.pid}\\b`), 'naming the dead daemon');

    let after = await status();
    const finishBy = Date.now() + 180_000;
    while (!['done', 'failed', 'canceled'].includes(after.state) && Date.now() < finishBy) {
      await sleep(250);
      after = await status();
    }
    t.match(after, { state: 'done', framesDone: 4, framesFailed: 0 }, 'the new daemon finished the job');

    const stopped = await runCli(['daemon', 'stop', '--json'], { env });
    t.match(JSON.parse(stopped.stdout), { stopped: true, pid: second.pid }, 'stop stops the new daemon');
    await until('the new daemon to exit', () => !processAlive(second.pid), 30_000, 50);
    t.pass('which then exits');
  },
);
