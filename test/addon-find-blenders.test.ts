// Which Blenders `skyfarm addon install|status|uninstall` finds: --blender only when given (each must
// exist), else SKYFARM_BLENDER, `blender` on PATH and the usual install folders of macOS and Windows
// (here laid out in a temp folder), each program once however many ways lead to it.
import t from 'tap';
import { chmodSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { findBlenders } from '../daemon/src/addon/find-blenders.js';

function program(file: string): string {
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, '#!/bin/sh\n');
  chmodSync(file, 0o755);
  return file;
}

t.test('--blender names exactly the Blenders to use', async (t) => {
  const dir = t.testdir({});
  const one = program(path.join(dir, 'a', 'blender'));
  const found = await findBlenders([one], { PATH: '', HOME: dir }, 'linux');
  t.same(found, [{ command: one, source: '--blender' }]);
  await t.rejects(findBlenders([path.join(dir, 'missing')], { PATH: '', HOME: dir }, 'linux'), {
    code: 'BLENDER_MISSING',
    message: /--blender .*missing: no such program/,
  });
});

t.test('macOS: SKYFARM_BLENDER, PATH and ~/Applications, each once', async (t) => {
  const dir = t.testdir({});
  const app = program(path.join(dir, 'Applications', 'Blender 4.2.app', 'Contents', 'MacOS', 'Blender'));
  const onPath = program(path.join(dir, 'bin', 'blender'));
  symlinkSync(app, path.join(dir, 'bin', 'blender-link'));
  const found = await findBlenders(
    [],
    { PATH: path.join(dir, 'bin'), HOME: dir, SKYFARM_BLENDER: path.join(dir, 'bin', 'blender-link') },
    'darwin',
  );
  t.same(found, [
    { command: path.join(dir, 'bin', 'blender-link'), source: 'SKYFARM_BLENDER' },
    { command: onPath, source: 'PATH' },
  ]);
});

t.test('Windows: every version under Program Files\\Blender Foundation', async (t) => {
  const dir = t.testdir({});
  const programFiles = path.join(dir, 'Program Files');
  const a = program(path.join(programFiles, 'Blender Foundation', 'Blender 4.2', 'blender.exe'));
  const b = program(path.join(programFiles, 'Blender Foundation', 'Blender 5.2', 'blender.exe'));
  const found = await findBlenders([], { PATH: '', USERPROFILE: dir, ProgramFiles: programFiles }, 'win32');
  t.same(
    found.map((entry) => entry.command),
    [a, b],
  );
});

t.test('none anywhere: BLENDER_MISSING says how to name one', async (t) => {
  const dir = t.testdir({});
  await t.rejects(findBlenders([], { PATH: '', HOME: dir }, 'darwin'), {
    code: 'BLENDER_MISSING',
    message: /skyfarm addon install --blender/,
  });
});
