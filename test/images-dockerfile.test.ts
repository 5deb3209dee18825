// infra/Dockerfile against what `skyfarm images build` sends: every file it COPYs from the build
// context is in the zip, and its BLENDER_VERSION handling (run here with sh, the download listing
// stubbed) takes a release as is, resolves a series to its newest Linux release and refuses the rest.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { contextFiles } from '../daemon/src/images/build-context.js';
import { REPO_ROOT } from './fakes/batch/aws-env.js';

const dockerfile = readFileSync(path.join(REPO_ROOT, 'infra/Dockerfile'), 'utf8');

t.test('every COPY source is in the build context', async (t) => {
  const files = await contextFiles(REPO_ROOT);
  const copies = dockerfile
    .split('\n')
    .filter((line) => /^COPY\s/.test(line) && !line.includes('--from='))
    .flatMap((line) => line.trim().split(/\s+/).slice(1, -1));
  t.ok(copies.length >= 5, `${copies.length} COPY sources`);
  for (const source of copies) {
    t.ok(
      files.some((f) => f === source || f.startsWith(`${source.replace(/\/$/, '')}/`)),
      `${source} is in the context`,
    );
  }
});

t.test('BLENDER_VERSION: release, series, refusals', async (t) => {
  // The RUN step that picks the release, up to the end of its `case`, as one shell command.
  const start = dockerfile.indexOf('case "${BLENDER_VERSION}" in');
  const end = dockerfile.indexOf('esac;', start) + 'esac;'.length;
  t.ok(start > 0 && end > start, 'found the case statement');
  const snippet = dockerfile.slice(start, end).replace(/\\\n/g, ''); // Docker joins continued lines
  const dir = t.testdir({
    'listing.html': [
      '<a href="blender-4.2.0-linux-x64.tar.xz">',
      '<a href="blender-4.2.10-linux-x64.tar.xz">',
      '<a href="blender-4.2.9-linux-x64.tar.xz">',
      '<a href="blender-4.2.11-windows-x64.zip">',
      '<a href="blender-4.2.3.sha256">',
    ].join('\n'),
  });
  const script = path.join(dir, 'pick.sh');
  writeFileSync(
    script,
    `set -eu\ncurl() { cat "${path.join(dir, 'listing.html')}"; }\nBLENDER_VERSION="$1"\n${snippet}\necho "$full"\n`,
  );
  const pick = (version: string): { ok: boolean; out: string } => {
    try {
      return {
        ok: true,
        out: execFileSync('sh', [script, version], { encoding: 'utf8', stdio: 'pipe' }).trim(),
      };
    } catch (error) {
      return { ok: false, out: String((error as { stderr?: string }).stderr ?? '') };
    }
  };
  t.same(pick('4.2.3'), { ok: true, out: '4.2.3' }, 'a release is used as given');
  t.same(pick('4.2'), { ok: true, out: '4.2.10' }, 'a series: its newest Linux release');
  for (const bad of ['4', '4.x', 'latest', '4.2.3.1', '4..2', '.4.2', '4.2.', '4.2;id']) {
    const result = pick(bad);
    t.equal(result.ok, false, `"${bad}" is refused`);
    t.match(result.out, /BLENDER_VERSION must look like 4\.2 or 4\.2\.3/);
  }
});

t.test('the runtime renders Eevee headless on every queue and runs a supported Node.js', async (t) => {
  const runtime = dockerfile.slice(dockerfile.lastIndexOf('\nFROM '));
  const packages = /apt-get install[^&]*/.exec(runtime)?.[0] ?? '';
  // CPU queues: Mesa's EGL vendor and llvmpipe (Eevee Next needs OpenGL 4.3, llvmpipe has 4.5).
  for (const name of ['libegl1', 'libegl-mesa0', 'libgl1-mesa-dri'])
    t.match(packages, new RegExp(`\\b${name}\\b`), `${name} installed`);
  // GPU queues: the NVIDIA runtime mounts the driver's EGL only with the graphics capability.
  t.match(runtime, /NVIDIA_DRIVER_CAPABILITIES=[^\s]*\bgraphics\b/, 'NVIDIA EGL mounted on GPU instances');
  t.match(runtime, /NVIDIA_DRIVER_CAPABILITIES=[^\s]*\bcompute\b/, 'CUDA/OptiX mounted on GPU instances');
  const node = /^ARG NODE_IMAGE=node:(\d+)/m.exec(dockerfile);
  const major = Number(node?.[1]);
  t.ok(major >= 22 && major % 2 === 0, `the worker's Node.js ${major} is an LTS line still supported`);
});
