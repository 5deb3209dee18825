// Each bad input gets a specific message and exit code 1, and leaves nothing half-written behind.
import t from 'tap';
import { chmodSync, existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { decompress } from 'fzstd';
import { blenderSkip, makeScene } from './helpers/scenes.js';
import { cliEnv, runCli } from './helpers/cli.js';

t.test('bad input to skyfarm render', { skip: blenderSkip }, async (t) => {
  const dir = t.testdir({
    'notes.blend': 'this is a text file pretending to be a scene\n',
    'picture.png': Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
  });
  const scene = await makeScene(dir, { frames: [1, 3], outputPath: '//never/frame_####' });
  const noCamera = await makeScene(dir, { name: 'nocam.blend', camera: false });
  const env = cliEnv(t, join(dir, 'home'));

  const cases: Array<{ what: string; args: string[]; env?: NodeJS.ProcessEnv; code: string; says: RegExp }> =
    [
      {
        what: 'missing file',
        args: ['render', join(dir, 'nope.blend')],
        code: 'FILE_NOT_FOUND',
        says: /nope\.blend does not exist/,
      },
      {
        what: 'not a .blend',
        args: ['render', join(dir, 'notes.blend')],
        code: 'NOT_A_BLEND',
        says: /not a Blender file/,
      },
      {
        what: 'an image',
        args: ['render', join(dir, 'picture.png')],
        code: 'NOT_A_BLEND',
        says: /not a Blender file/,
      },
      {
        what: 'malformed frame spec',
        args: ['render', scene, '--frames', '1-x'],
        code: 'BAD_FRAME_SPEC',
        says: /1-x/,
      },
      {
        what: 'reversed range',
        args: ['render', scene, '--frames', '10-1'],
        code: 'BAD_FRAME_SPEC',
        says: /10-1/,
      },
      {
        what: 'empty frame spec',
        args: ['render', scene, '--frames', ','],
        code: 'BAD_FRAME_SPEC',
        says: /frame/,
      },
      {
        what: 'unknown scene',
        args: ['render', scene, '--scene', 'Nope'],
        code: 'SCENE_NOT_FOUND',
        says: /"Nope".*Scene/,
      },
      { what: 'no camera', args: ['render', noCamera], code: 'NO_CAMERA', says: /no camera/ },
    ];
  for (const c of cases) {
    const result = await runCli([...c.args, '--json'], { env: { ...env, ...c.env }, cwd: dir });
    t.equal(result.code, 1, `${c.what}: exit code 1`);
    const parsed = JSON.parse(result.stdout || '{}') as { error?: { code: string; message: string } };
    t.equal(parsed.error?.code, c.code, `${c.what}: error code ${c.code}`);
    t.match(parsed.error?.message, c.says, `${c.what}: says what is wrong (${parsed.error?.message})`);
  }
  const text = await runCli(['render', join(dir, 'nope.blend')], { env, cwd: dir });
  t.match(text.stderr, /^skyfarm: .*does not exist/m, 'without --json the message goes to stderr');

  // The daemon finds Blender, so these run against daemons started with that environment.
  const missingEnv = cliEnv(t, join(dir, 'home-missing'), { SKYFARM_BLENDER: join(dir, 'no-blender-here') });
  const missing = await runCli(['render', scene, '--json'], { env: missingEnv, cwd: dir });
  t.equal(missing.code, 1, 'Blender missing: exit code 1');
  t.match(JSON.parse(missing.stdout), {
    error: { code: 'BLENDER_MISSING', message: /no-blender-here.*apt-get install blender/s },
  });
  // Blender too old: a stand-in binary that reports 2.79.
  const oldBlender = join(dir, 'old-blender');
  writeFileSync(oldBlender, '#!/bin/sh\necho "Blender 2.79 (sub 7)"\n');
  chmodSync(oldBlender, 0o755);
  const oldEnv = cliEnv(t, join(dir, 'home-old'), { SKYFARM_BLENDER: oldBlender });
  const old = await runCli(['render', scene, '--json'], { env: oldEnv, cwd: dir });
  t.equal(old.code, 1);
  t.match(JSON.parse(old.stdout), { error: { code: 'BLENDER_TOO_OLD', message: /2\.79/ } });

  // Output folder not writable: a read-only parent.
  // (root writes anywhere, so the read-only case only means something for other users.)
  if (process.getuid?.() !== 0) {
    const locked = join(dir, 'locked');
    mkdirSync(locked);
    chmodSync(locked, 0o555);
    try {
      const ro = await runCli(['render', scene, '--output', join(locked, 'out'), '--json'], {
        env,
        cwd: dir,
      });
      t.equal(ro.code, 1);
      t.match(JSON.parse(ro.stdout), { error: { code: 'OUTPUT_NOT_WRITABLE' } });
    } finally {
      chmodSync(locked, 0o755);
    }
  }
  // A file where the output folder should be is refused for root too.
  writeFileSync(join(dir, 'occupied'), 'x');
  const occupied = await runCli(['render', scene, '--output', join(dir, 'occupied', 'out'), '--json'], {
    env,
    cwd: dir,
  });
  t.equal(occupied.code, 1);
  t.match(JSON.parse(occupied.stdout), { error: { code: 'OUTPUT_NOT_WRITABLE', message: /occupied/ } });

  // Usage errors.
  t.equal((await runCli(['render'], { env })).code, 1, 'render without a file');
  t.equal((await runCli(['render', scene, '--chunk-size', '0'], { env })).code, 1, 'chunk size 0');
  t.equal((await runCli(['render', scene, '--backend', 'gcp'], { env })).code, 1, 'unknown backend');
  t.equal((await runCli(['frobnicate'], { env })).code, 1, 'unknown command');

  // Nothing half-written: no job was created, the scene's output folder was never made.
  const jobs = await runCli(['jobs', '--json'], { env });
  t.same(JSON.parse(jobs.stdout), [], 'no job exists after all these refusals');
  t.notOk(existsSync(join(dir, 'never')), "the scene's output folder was not created");
  t.same(readdirSync(join(dir, 'home', 'work')), [], 'no working folder left');
});

t.test('a gzip-compressed .blend passes the magic check', { skip: blenderSkip }, async (t) => {
  const dir = t.testdir({});
  const { readFileSync } = await import('node:fs');
  const scene = await makeScene(dir, { frames: [1, 1] });
  // Blender 5+ saves zstd-compressed files: gzip the plain bytes, as Blender before 3.0 wrote them.
  const saved = readFileSync(scene);
  const plain = saved.subarray(0, 4).equals(Buffer.from([0x28, 0xb5, 0x2f, 0xfd]))
    ? Buffer.from(decompress(saved))
    : saved;
  t.equal(plain.subarray(0, 7).toString('latin1'), 'BLENDER', 'a plain .blend to compress');
  writeFileSync(join(dir, 'zipped.blend'), gzipSync(plain));
  const { assertBlendFile } = await import('../daemon/src/jobs/validate-blend.js');
  await t.resolves(assertBlendFile(join(dir, 'zipped.blend')));
  await t.rejects(assertBlendFile(join(dir, 'nope.blend')), { code: 'FILE_NOT_FOUND' });
});

t.test('a second daemon on the same state dir refuses and names the running one', async (t) => {
  const dir = t.testdir({});
  const env = cliEnv(t, join(dir, 'home'));
  const start = await runCli(['daemon', 'start', '--json'], { env });
  t.equal(start.code, 0);
  const running = JSON.parse(start.stdout) as { pid: number; port: number };
  const second = await runCli(['daemon'], { env, timeoutMs: 30_000 });
  t.equal(second.code, 1, 'exit code 1');
  t.match(second.stderr, new RegExp(`already running .*pid ${running.pid}, port ${running.port}`));
  const status = await runCli(['daemon', 'status', '--json'], { env });
  t.match(JSON.parse(status.stdout), { running: true, pid: running.pid }, 'the first daemon is unharmed');
  const stop = await runCli(['daemon', 'stop'], { env });
  t.match(stop.stdout, /stopped/);
  const after = await runCli(['daemon', 'status'], { env });
  t.equal(after.code, 4, 'status of a stopped daemon exits 4 (unreachable)');
  const jobs = await runCli(['jobs'], { env });
  t.equal(jobs.code, 4, 'a command needing the daemon exits 4 when none runs');
});
