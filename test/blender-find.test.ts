// findBlender: SKYFARM_BLENDER or `blender` on PATH, its version, and errors that say how to install.
import t from 'tap';
import { chmod, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { isSkyfarmError } from '../daemon/src/errors.js';
import { findBlender } from '../daemon/src/render/blender.js';
import { blenderSkip } from './helpers/scenes.js';

async function rejection(promise: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await promise;
  } catch (error) {
    if (isSkyfarmError(error)) return { code: error.code, message: error.message };
    throw error;
  }
  throw new Error('expected an error');
}

/** A stand-in executable that prints `output` for --version and exits with `exitCode`. */
async function fakeBlender(dir: string, output: string, exitCode = 0, name = 'blender'): Promise<string> {
  const file = path.join(dir, name);
  await writeFile(file, `#!/bin/sh\nprintf '%s\\n' '${output}'\nexit ${exitCode}\n`);
  await chmod(file, 0o755);
  return file;
}

t.test('the installed Blender', { skip: blenderSkip }, async (t) => {
  const found = await findBlender();
  t.ok(path.isAbsolute(found.path), `absolute path ${found.path}`);
  t.equal(found.version.length, 3);
  t.ok(
    found.version[0]! > 3 || (found.version[0] === 3 && found.version[1]! >= 4),
    `version ${found.version}`,
  );
});

t.test('SKYFARM_BLENDER wins over PATH', async (t) => {
  const dir = t.testdir({ bin: {}, custom: {} });
  await fakeBlender(path.join(dir, 'bin'), 'Blender 4.2.3 LTS (hash abc built 2024-10-15)');
  const custom = await fakeBlender(path.join(dir, 'custom'), 'Blender 3.6.0', 0, 'my blender');
  const env = { PATH: path.join(dir, 'bin'), SKYFARM_BLENDER: custom };
  t.same(await findBlender(env), { path: custom, version: [3, 6, 0] });
  t.same(await findBlender({ PATH: path.join(dir, 'bin') }), {
    path: path.join(dir, 'bin', 'blender'),
    version: [4, 2, 3],
  });
});

t.test('version banner forms', async (t) => {
  const dir = t.testdir();
  const cases: Array<[string, [number, number, number]]> = [
    ['Blender 3.4.1', [3, 4, 1]],
    ['Blender 4.1', [4, 1, 0]],
    ['Blender 5.0.0 Alpha', [5, 0, 0]],
  ];
  for (const [banner, version] of cases) {
    const file = await fakeBlender(dir, banner);
    t.same((await findBlender({ PATH: '', SKYFARM_BLENDER: file })).version, version, banner);
  }
});

t.test('missing Blender says how to install it', async (t) => {
  const dir = t.testdir();
  const onPath = await rejection(findBlender({ PATH: dir }));
  t.equal(onPath.code, 'BLENDER_MISSING');
  t.match(onPath.message, '"blender" on PATH');
  t.match(onPath.message, 'sudo apt-get install blender');
  t.match(onPath.message, 'blender.org');
  t.match(onPath.message, 'SKYFARM_BLENDER');

  const configured = await rejection(findBlender({ PATH: dir, SKYFARM_BLENDER: path.join(dir, 'nope') }));
  t.equal(configured.code, 'BLENDER_MISSING');
  t.match(configured.message, `SKYFARM_BLENDER=${path.join(dir, 'nope')}`);

  const notExecutable = path.join(dir, 'plain');
  await writeFile(notExecutable, 'not a program');
  t.equal(
    (await rejection(findBlender({ PATH: '', SKYFARM_BLENDER: notExecutable }))).code,
    'BLENDER_MISSING',
  );
});

t.test('something that is not Blender', async (t) => {
  const dir = t.testdir();
  const other = await fakeBlender(dir, 'GNU nano 7.2');
  const error = await rejection(findBlender({ PATH: '', SKYFARM_BLENDER: other }));
  t.equal(error.code, 'BLENDER_MISSING');
  t.match(error.message, 'is not a working Blender');
  t.match(error.message, 'GNU nano 7.2', 'shows what it printed');

  const failing = await fakeBlender(dir, 'Blender 4.2.0', 1, 'failing');
  const failed = await rejection(findBlender({ PATH: '', SKYFARM_BLENDER: failing }));
  t.equal(failed.code, 'BLENDER_MISSING');
  t.match(failed.message, 'exited with code 1');
});

t.test('Blender older than 3.4', async (t) => {
  const dir = t.testdir();
  for (const banner of ['Blender 3.3.9', 'Blender 2.93.18']) {
    const file = await fakeBlender(dir, banner);
    const error = await rejection(findBlender({ PATH: '', SKYFARM_BLENDER: file }));
    t.equal(error.code, 'BLENDER_TOO_OLD', banner);
    t.match(error.message, `is ${banner}; skyfarm needs 3.4 or newer`);
  }
});
