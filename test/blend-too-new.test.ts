// A .blend saved by a newer Blender than the one skyfarm uses is refused before Blender starts on it
// (BLEND_TOO_NEW, exit code 1, nothing created), naming both versions and what to do; before, 3.4
// crashed on a 4.x file and called a 5.x one "not a blend file" (BLENDER_FAILED). The version comes
// from the file's header (plain, zstd, gzip; the 12-byte header up to 4.x, the 17-byte one from 5.0),
// checked against what the saving Blender itself reports.
import t from 'tap';
import type { Test } from 'tap';
import { execFile, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import { assertBlendFile } from '../daemon/src/jobs/validate-blend.js';
import { blenderCommand, blenderSkip, blenderVersion } from './helpers/scenes.js';
import { startTestDaemon, connectTestClient } from './helpers/daemon.js';
import { runSkyfarm } from './fakes/batch/farm.js';

const execFileAsync = promisify(execFile);

/** Blenders on this machine besides the one under test (test/blenders/setup.sh installs these). */
const OTHER_BLENDERS = (process.env.SKYFARM_OTHER_BLENDERS ?? 'blender-trixie blender-sid')
  .split(/\s+/)
  .filter(Boolean);

function versionOf(command: string): number[] | null {
  const run = spawnSync(command, ['--version'], { encoding: 'utf8', timeout: 60_000 });
  const match = run.status === 0 ? /^Blender (\d+)\.(\d+)(?:\.(\d+))?/m.exec(run.stdout) : null;
  return match ? [Number(match[1]), Number(match[2]), Number(match[3] ?? 0)] : null;
}

const own = blenderVersion ? blenderVersion.split('.').map(Number) : null;
const newer = own
  ? OTHER_BLENDERS.map((command) => ({ command, version: versionOf(command) })).filter(
      (b): b is { command: string; version: number[] } =>
        b.version !== null && (b.version[0]! - own[0]! || b.version[1]! - own[1]!) > 0,
    )
  : [];
const newerSkip =
  blenderSkip ||
  (newer.length === 0
    ? `no Blender newer than ${blenderCommand} (${blenderVersion}) here to save the files ` +
      `(looked for ${OTHER_BLENDERS.join(', ')}; test/blenders/setup.sh installs them)`
    : false);

// Saves the startup scene plain and compressed; prints the version Blender itself reads from the file.
const SAVE_PY = String.raw`
import bpy, sys
folder = sys.argv[sys.argv.index("--") + 1]
bpy.context.scene.render.resolution_percentage = 5
bpy.ops.wm.save_as_mainfile(filepath=folder + "/plain.blend", compress=False)
bpy.ops.wm.save_as_mainfile(filepath=folder + "/compressed.blend", compress=True)
bpy.ops.wm.open_mainfile(filepath=folder + "/compressed.blend")
print("SKYFARM_SAVED_BY %d.%d" % tuple(bpy.data.version[:2]))  # what Blender reads back
`;

/**
 * Saves the fixture files with `command`. Building the fixture is not what this file tests: one
 * failed save (CI once saw blender-trixie exit 1 here, output not kept) is retried once, and both
 * attempts' output is shown so the cause is on record.
 */
async function saveWith(t: Test, command: string, folder: string): Promise<string> {
  const failures: string[] = [];
  for (let attempt = 1; attempt <= 2; attempt++) {
    const run = await execFileAsync(
      command,
      ['-b', '--factory-startup', '--python-exit-code', '1', '--python-expr', SAVE_PY, '--', folder],
      { timeout: 120_000, maxBuffer: 16 * 1024 * 1024 },
    ).catch((error: { code?: unknown; stdout?: string; stderr?: string }) => ({
      stdout: `exit ${String(error.code)}\n${error.stdout ?? ''}\n${error.stderr ?? ''}`,
    }));
    const saved = /SKYFARM_SAVED_BY (\d+\.\d+)/.exec(run.stdout)?.[1];
    if (saved) {
      if (failures.length)
        t.comment(`${command} saved on attempt ${attempt}; before:\n${failures.join('\n')}`);
      return saved;
    }
    failures.push(`attempt ${attempt}: ${run.stdout.slice(-3000)}`);
  }
  throw new Error(`${command} did not save the files in ${folder}:\n${failures.join('\n')}`);
}

t.test("the header's version is the one Blender gives the file", { skip: blenderSkip }, async (t) => {
  const dir = t.testdir({});
  const saved = await saveWith(t, blenderCommand, dir);
  for (const name of ['plain.blend', 'compressed.blend'])
    t.same((await assertBlendFile(path.join(dir, name)))?.join('.'), saved, `${name} of ${blenderVersion}`);
});

t.test('a file from a newer Blender is refused before Blender opens it', { skip: newerSkip }, async (t) => {
  const dir = t.testdir({});
  // Blender through a wrapper that writes down every command line: none may name the files.
  const calls = path.join(dir, 'blender-calls.txt');
  const wrapper = path.join(dir, 'blender-logged');
  writeFileSync(wrapper, `#!/bin/sh\nprintf '%s\\n' "$*" >> '${calls}'\nexec '${blenderCommand}' "$@"\n`, {
    mode: 0o755,
  });
  const daemon = await startTestDaemon(t, {
    stateDir: path.join(dir, 'home'),
    env: { SKYFARM_BLENDER: wrapper },
  });
  const client = await connectTestClient(t, daemon);
  for (const { command } of newer) {
    const folder = path.join(dir, command);
    mkdirSync(folder);
    const saved = await saveWith(t, command, folder);
    // Blender < 3.0 compressed with gzip: the same header inside.
    writeFileSync(path.join(folder, 'gzip.blend'), gzipSync(readFileSync(path.join(folder, 'plain.blend'))));
    for (const name of ['plain.blend', 'compressed.blend', 'gzip.blend']) {
      const file = path.join(folder, name);
      t.equal((await assertBlendFile(file))?.join('.'), saved, `${command} ${name}: header says ${saved}`);
      const run = await runSkyfarm(['render', file, '--wait'], daemon.paths.root, dir);
      t.equal(run.code, 1, `${command} ${name}: exit code 1`);
      t.match(
        run.stderr,
        `${file} was saved by Blender ${saved}; the Blender skyfarm uses (`,
        'names the file and the Blender that saved it',
      );
      t.match(
        run.stderr,
        `) is ${blenderVersion}, which cannot open it. Set SKYFARM_BLENDER to a newer Blender`,
      );
    }
    // `skyfarm upload` reads the scene with the same Blender: refused the same way.
    const upload = await runSkyfarm(['upload', path.join(folder, 'plain.blend')], daemon.paths.root, dir);
    t.equal(upload.code, 1, `${command}: upload exit code 1`);
    t.match(
      upload.stderr,
      `was saved by Blender ${saved}; the Blender skyfarm uses (`,
      'upload: same message',
    );
    const json = await runSkyfarm(
      ['render', path.join(folder, 'compressed.blend'), '--json'],
      daemon.paths.root,
      dir,
    );
    t.equal(json.code, 1);
    t.match(JSON.parse(json.stdout), { error: { code: 'BLEND_TOO_NEW' } }, '--json: the error code');
  }
  t.same((await client.request('jobs.list', {})).jobs, [], 'no job was created');
  const started = existsSync(calls) ? readFileSync(calls, 'utf8').trim().split('\n') : [];
  t.ok(started.length > 0, `Blender was asked its version (${started.length} starts)`);
  t.notOk(
    started.some((line) => line.includes('.blend')),
    'no Blender was started on the files',
    { started },
  );
});
