// skyfarm installs as a product (issue #16): `npm pack`, `npm install -g` of the tarball into an empty
// prefix, and the installed `skyfarm` runs with an empty HOME from a folder outside the checkout:
// `--version`, and `skyfarm demo` renders its frames on the local backend. The package holds what
// runs (no tests, no dev dependencies) and what `skyfarm images build` sends to CodeBuild.
import t from 'tap';
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { contextFiles } from '../daemon/src/images/build-context.js';
import { projectRoot } from './helpers/cli.js';
import { installPacked, runCommand, tempFolder, userEnv } from './helpers/packed-install.js';
import { blenderSkip, readPng } from './helpers/scenes.js';

const { version } = JSON.parse(readFileSync(path.join(projectRoot, 'package.json'), 'utf8')) as {
  version: string;
};

t.test('the packed tarball installs into an empty prefix and renders the demo', async (t) => {
  const installed = await installPacked(t);
  t.comment(
    `npm pack: ${installed.seconds.pack.toFixed(1)} s, npm install -g: ${installed.seconds.install.toFixed(1)} s`,
  );
  t.same(installed.prebuiltServed.length, 1, "better-sqlite3's prebuilt binary came from the mirror");

  const modules = path.join(installed.packageDir, 'node_modules');
  for (const dev of ['typescript', 'tap', 'tsx', 'eslint', 's3rver'])
    t.notOk(existsSync(path.join(modules, dev)), `no dev dependency ${dev}`);
  t.ok(existsSync(path.join(modules, 'better-sqlite3', 'build', 'Release', 'better_sqlite3.node')));
  for (const absent of ['test', 'bench', 'blender-addon/tests', '.ci'])
    t.notOk(existsSync(path.join(installed.packageDir, absent)), `${absent} is not in the package`);
  for (const file of [
    'daemon/blender/probe.py',
    'daemon/blender/render_chunk.py',
    'daemon/demo/demo.blend',
    'blender-addon/build.py',
    'blender-addon/skyfarm/__init__.py',
    'blender-addon/skyfarm/blender_manifest.toml',
    'infra/skyfarm.yaml',
  ])
    t.ok(existsSync(path.join(installed.packageDir, file)), `${file} is in the package`);
  const context = await contextFiles(installed.packageDir);
  for (const file of [
    'package-lock.json',
    'infra/Dockerfile',
    'daemon/src/cli/main.ts',
    'infra/worker/main.ts',
  ])
    t.ok(context.includes(file), `the worker image's build context has ${file}`);

  const home = tempFolder(t, 'skyfarm-home-');
  const cwd = path.join(home, 'work');
  mkdirSync(cwd);
  const blender = process.env.SKYFARM_BLENDER?.trim();
  const env = userEnv(home, blender ? { SKYFARM_BLENDER: blender } : {});

  const versionRun = await runCommand(installed.skyfarm, ['--version'], { env, cwd, timeoutMs: 60_000 });
  t.equal(versionRun.code, 0, 'skyfarm --version exits 0');
  t.equal(versionRun.stdout.trim(), version, 'the version of package.json');
  const worker = await runCommand(installed.skyfarmWorker, ['help'], { env, cwd, timeoutMs: 60_000 });
  t.match(`${worker.stdout}${worker.stderr}`, /copy\|render\|publish/, 'skyfarm-worker runs');

  t.test('skyfarm demo', { skip: blenderSkip }, async (t) => {
    t.teardown(() => runCommand(installed.skyfarm, ['daemon', 'stop'], { env, cwd, timeoutMs: 30_000 }));
    const demo = await runCommand(installed.skyfarm, ['demo'], { env, cwd, timeoutMs: 300_000 });
    t.equal(demo.code, 0, `skyfarm demo exits 0 (${demo.stderr.slice(-300)})`);
    const output = path.join(cwd, 'demo-output');
    t.match(demo.stdout, `6 frames in ${output}`, 'frames land in demo-output under the working folder');
    t.match(
      demo.stdout,
      path.join(installed.packageDir, 'daemon', 'demo', 'demo.blend'),
      'the packaged scene',
    );
    const frames = readdirSync(output).sort();
    t.same(
      frames,
      [1, 2, 3, 4, 5, 6].map((n) => `demo_000${n}.png`),
    );
    const png = await readPng(path.join(output, frames[0]!));
    t.same([png.width, png.height], [320, 180], 'frames at the demo resolution');
    t.ok(
      existsSync(path.join(home, '.local', 'state', 'skyfarm', 'daemon.log')),
      'the daemon kept its state in the empty HOME',
    );
    const status = await runCommand(installed.skyfarm, ['daemon', 'status'], { env, cwd, timeoutMs: 30_000 });
    t.equal(status.code, 4, 'the daemon the demo started is stopped again');
  });
});
