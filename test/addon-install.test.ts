// From nothing to frames in Blender (issue #16): the packed tarball installed into an empty prefix,
// `skyfarm addon install --blender B` with an empty HOME (4.2+: an extension, older: a legacy add-on),
// status (stale versions flagged), an upgrade in place; then that Blender, started in the background
// with no skyfarm on its PATH and nothing typed into the preferences, presses Start Daemon and Render
// and gets frames, and the same in the GUI under Xvfb; finally `skyfarm addon uninstall` removes it. Runs with SKYFARM_BLENDER (the matrix).
import t from 'tap';
import { readFileSync, realpathSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import {
  artifactsDir,
  blender,
  blenderRelease,
  nodeForBlender,
  runBlenderScript,
  startXvfb,
  stopDaemonIn,
} from '../blender-addon/tests/harness.js';
import { checkCapture } from '../blender-addon/tests/screen.js';
import { resolveExecutable } from '../daemon/src/render/blender.js';
import { projectRoot } from './helpers/cli.js';
import { installPacked, runCommand, tempFolder, userEnv } from './helpers/packed-install.js';
import { blenderSkip } from './helpers/scenes.js';

const { version } = JSON.parse(readFileSync(path.join(projectRoot, 'package.json'), 'utf8')) as {
  version: string;
};

interface Installed {
  kind: 'extension' | 'legacy';
  folder: string;
  version: string;
  cliCommand?: string[];
  stale: boolean;
}
interface AddonReport {
  version: string;
  cliCommand: string[];
  blenders: {
    blender: string;
    version?: string;
    kind?: string;
    installed: Installed[];
    changed?: Installed[];
    error?: { code: string; message: string };
  }[];
}

t.test(
  'skyfarm addon install, then Start Daemon and Render in that Blender',
  { skip: blenderSkip },
  async (t) => {
    const [major, minor] = blenderRelease();
    const kind = major > 4 || (major === 4 && minor >= 2) ? 'extension' : 'legacy';
    t.comment(
      `Blender ${major}.${minor}: the add-on installs as ${kind === 'extension' ? 'an extension' : 'a legacy add-on'}`,
    );
    const installed = await installPacked(t);
    t.comment(
      `npm pack: ${installed.seconds.pack.toFixed(1)} s, npm install -g: ${installed.seconds.install.toFixed(1)} s`,
    );

    // The Node.js at a path a chroot Blender sees too, first on a PATH that has no skyfarm.
    const node = nodeForBlender(t);
    const home = tempFolder(t, 'skyfarm-home-');
    const env = userEnv(home, {
      PATH: [
        path.dirname(node),
        '/usr/local/sbin',
        '/usr/local/bin',
        '/usr/sbin',
        '/usr/bin',
        '/sbin',
        '/bin',
      ].join(path.delimiter),
    });
    for (const name of Object.keys(env)) if (name.startsWith('BLENDER_')) delete env[name];
    const blenderPath = (await resolveExecutable(blender, process.env)) ?? blender;
    const addon = async (args: string[]): Promise<AddonReport> => {
      const result = await runCommand(
        installed.skyfarm,
        ['addon', ...args, '--blender', blenderPath, '--json'],
        {
          env,
          cwd: home,
          timeoutMs: 600_000,
        },
      );
      t.equal(result.code, 0, `skyfarm addon ${args.join(' ')} exits 0`, {
        stderr: result.stderr.slice(-2000),
        stdout: result.stdout.slice(-2000),
      });
      return JSON.parse(result.stdout) as AddonReport;
    };

    const first = await addon(['install']);
    const expectedCli = [
      node,
      realpathSync(path.join(installed.packageDir, 'dist', 'daemon', 'src', 'cli', 'main.js')),
    ];
    t.same(first.cliCommand, expectedCli, 'the add-on will start the CLI that installed it');
    const [report] = first.blenders;
    t.equal(report?.error, undefined, 'no error');
    t.equal(report?.kind, kind);
    t.match(
      report?.installed,
      [{ kind, version, stale: false, cliCommand: expectedCli }],
      'installed, current',
    );
    t.equal(report?.installed.length, 1, 'one copy');
    t.ok(report?.installed[0]?.folder.startsWith(home), 'in the user folders under HOME');

    // An older add-on is flagged stale, and installing again upgrades it in place.
    const folder = report!.installed[0]!.folder;
    const versionFile = path.join(folder, kind === 'extension' ? 'blender_manifest.toml' : '__init__.py');
    const text = readFileSync(versionFile, 'utf8');
    writeFileSync(
      versionFile,
      kind === 'extension'
        ? text.replace(/^version = "[^"]+"/m, 'version = "0.0.1"')
        : text.replace(/"version": \([\d, ]+\)/, '"version": (0, 0, 1)'),
    );
    const stale = await addon(['status']);
    t.match(
      stale.blenders[0]?.installed,
      [{ version: '0.0.1', stale: true }],
      'status flags the old add-on stale',
    );
    const again = await addon(['install']);
    t.match(again.blenders[0]?.installed, [{ version, stale: false, folder }], 'upgraded in place');
    t.equal(again.blenders[0]?.installed.length, 1, 'still one copy');

    const stateDir = path.join(home, '.local', 'state', 'skyfarm');
    t.teardown(() => stopDaemonIn(stateDir));
    const outputDir = path.join(home, 'frames');
    await runBlenderScript(t, {
      script: 'installed_render.py',
      args: { cliCommand: expectedCli, outputDir, renderTimeout: 180 },
      env,
      factoryStartup: false,
      timeoutMs: 6 * 60_000,
    });
    await stopDaemonIn(stateDir);

    // The same in the GUI under Xvfb: Start Daemon and Render pressed in the Output tab, timers running.
    const display = await startXvfb(t);
    const gui = await runBlenderScript(t, {
      script: 'installed_gui.py',
      background: false,
      factoryStartup: false,
      display,
      args: {
        outputDir: path.join(home, 'frames-gui'),
        renderTimeout: 180,
        timeout: 300,
        artifactsDir: artifactsDir('addon-installed-gui'),
      },
      env: { ...env, DISPLAY: display },
      timeoutMs: 6 * 60_000,
    });
    t.notMatch(
      `${gui.stdout}\n${gui.stderr}`,
      /Traceback|Error in|rna_uiItem/,
      'no Python errors while drawing',
    );
    t.same(
      gui.captures.map((capture) => capture.name),
      ['addon-installed-done'],
      'the finished job was photographed',
    );
    for (const capture of gui.captures) {
      checkCapture(t, capture);
      t.comment(`screenshot: ${capture.png}`);
    }
    await stopDaemonIn(stateDir);

    const removed = await addon(['uninstall']);
    t.match(removed.blenders[0]?.changed, [{ kind, folder }], 'uninstall removed it');
    const after = await addon(['status']);
    t.same(after.blenders[0]?.installed, [], 'status: not installed');
  },
);
