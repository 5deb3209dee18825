// The add-on in the Blender under test, a daemon using an older Blender: the copy the add-on saves
// is this Blender's file, so the daemon refuses it (BLEND_TOO_NEW) before its Blender opens it, and
// the add-on reports the daemon's message with both versions and the code. Runs where an older
// Blender than the one under test is installed (the 4.3 and 5.2 runs of the Blender matrix).
import t from 'tap';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { makeScene } from './helpers/scenes.js';
import { startTestDaemon } from './helpers/daemon.js';
import {
  addonRoot,
  blender,
  blenderEnv,
  blenderVersion,
  runBlenderScript,
} from '../blender-addon/tests/harness.js';

const own = blenderVersion();
t.comment(`using ${own}`);

function versionOf(command: string): string | null {
  const run = spawnSync(command, ['--version'], { encoding: 'utf8', timeout: 60_000 });
  return run.status === 0 ? (/^Blender (\d+\.\d+\.\d+)/m.exec(run.stdout)?.[1] ?? null) : null;
}

const series = (version: string) => version.split('.').slice(0, 2).map(Number);
const ownRelease = /Blender (\d+\.\d+\.\d+)/.exec(own)?.[1];
const ownSeries = ownRelease ? series(ownRelease) : null;
const older = ownSeries
  ? ['blender', 'blender-trixie', 'blender-sid']
      .filter((command) => command !== blender)
      .map((command) => ({ command, version: versionOf(command) }))
      .find((b) => {
        if (!b.version) return false;
        const [major, minor] = series(b.version);
        return major! < ownSeries[0]! || (major === ownSeries[0] && minor! < ownSeries[1]!);
      })
  : undefined;

t.test(
  'a scene from a newer Blender than the daemon’s: the add-on shows BLEND_TOO_NEW',
  {
    skip: older
      ? false
      : `no Blender older than ${blender} (${own}) here for the daemon (test/blenders/setup.sh installs newer ones)`,
  },
  async (t) => {
    const dir = t.testdir({ project: {} });
    const daemon = await startTestDaemon(t, {
      stateDir: path.join(dir, 'home'),
      env: { SKYFARM_BLENDER: older!.command },
    });
    const blendFile = await makeScene(path.join(dir, 'project'), { frames: [1, 2] });
    await runBlenderScript(t, {
      script: 'too_new.py',
      blendFile,
      args: {
        addonSource: addonRoot,
        outputDir: path.join(dir, 'out'),
        saved: ownSeries!.join('.'),
        daemonBlender: older!.version,
      },
      env: blenderEnv(t, { SKYFARM_HOME: daemon.paths.root }),
      timeoutMs: 180_000,
    });
  },
);
