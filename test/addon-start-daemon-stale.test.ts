// The add-on's Start Daemon (it runs `skyfarm daemon start`) succeeds at once while the previous
// daemon, killed with SIGKILL, is still an unreaped zombie whose daemon.json is left behind (issue #15).
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  addonRoot,
  blenderEnv,
  blenderVersion,
  cliEntry,
  daemonHomeStartedByBlender,
  nodeForBlender,
  runBlenderScript,
} from '../blender-addon/tests/harness.js';
import { blenderSkip } from './helpers/scenes.js';
import { processState, startUnreapedDaemon } from './helpers/unreaped-daemon.js';
import { until } from './helpers/until.js';

const linuxOnly = process.platform === 'linux' ? false : 'zombie states are read from /proc (Linux)';

t.test(
  'Start Daemon in Blender while the killed daemon is a zombie',
  { skip: linuxOnly || blenderSkip },
  async (t) => {
    t.comment(`using ${blenderVersion()}`);
    const dir = t.testdir({});
    const home = daemonHomeStartedByBlender(t);
    const dead = await startUnreapedDaemon(
      t,
      { ...process.env, SKYFARM_HOME: home, SKYFARM_PORT: '0' },
      join(dir, 'killed-daemon.log'),
    );
    process.kill(dead.pid, 'SIGKILL');
    await until('the killed daemon to be a zombie', () => processState(dead.pid) === 'Z', 10_000);

    await runBlenderScript(t, {
      script: 'start_daemon_stale.py',
      args: {
        addonSource: addonRoot,
        skyfarmCommand: `"${nodeForBlender(t)}" "${cliEntry}"`,
        deadPid: dead.pid,
      },
      env: blenderEnv(t, { SKYFARM_HOME: home, SKYFARM_PORT: '0' }),
      timeoutMs: 3 * 60_000,
    });
    t.equal(processState(dead.pid), 'Z', 'the killed daemon was an unreaped zombie throughout');
    const info = JSON.parse(readFileSync(join(home, 'daemon.json'), 'utf8')) as { pid: number };
    t.not(info.pid, dead.pid, 'the daemon Blender started runs');
  },
);
