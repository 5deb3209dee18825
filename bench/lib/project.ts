// Synthetic projects for the upload, hash and watch metrics: a real .blend (the demo scene) plus N
// texture-like files of random bytes whose sizes follow a log-uniform mix (many small files, a few
// large enough to go multipart), summing to the requested total. The dependency list is what the
// add-on would send with the submit, so no Blender run is needed to upload it.
import { randomFillSync } from 'node:crypto';
import { copyFileSync, mkdirSync, openSync, closeSync, statSync, writeSync } from 'node:fs';
import path from 'node:path';
import type { Dependency } from '../../protocol/generated/protocol.js';

export interface Project {
  root: string;
  blendFile: string;
  files: string[];
  bytes: number;
  dependencies: Dependency[];
}

/** A small deterministic PRNG (mulberry32), so sizes are the same in every run. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** File sizes: log-uniform between 4 KiB and `max`, scaled so they sum to `total` exactly. */
export function fileSizes(count: number, total: number, max = 48 * 1024 * 1024): number[] {
  const random = prng(count * 7919 + 17);
  const lo = Math.log(4096);
  const hi = Math.log(Math.max(8192, Math.min(max, total / 4)));
  const raw = Array.from({ length: count }, () => Math.exp(lo + (hi - lo) * random()));
  const scale = total / raw.reduce((a, b) => a + b, 0);
  const sizes = raw.map((x) => Math.max(1, Math.floor(x * scale)));
  const rest = total - sizes.reduce((a, b) => a + b, 0);
  sizes[0] = (sizes[0] ?? 0) + rest;
  return sizes;
}

export function writeRandomFile(file: string, size: number, buffer: Buffer): void {
  const fd = openSync(file, 'w');
  try {
    let left = size;
    while (left > 0) {
      const n = Math.min(left, buffer.length);
      randomFillSync(buffer, 0, n);
      writeSync(fd, buffer, 0, n);
      left -= n;
    }
  } finally {
    closeSync(fd);
  }
}

/**
 * `<dir>/scenes/shot.blend` (a copy of daemon/demo/demo.blend) and `files` textures in `folders`
 * sibling folders (`textures/set_NN/tex_NNNNN.png`), `bytes` in all (the .blend included).
 */
export function makeProject(
  repoRoot: string,
  dir: string,
  options: { files: number; bytes: number; folders?: number; maxFile?: number },
): Project {
  const blendFile = path.join(dir, 'scenes', 'shot.blend');
  mkdirSync(path.dirname(blendFile), { recursive: true });
  copyFileSync(path.join(repoRoot, 'daemon', 'demo', 'demo.blend'), blendFile);
  const blendBytes = statSync(blendFile).size;
  const textures = Math.max(1, options.files - 1);
  const folders = options.folders ?? Math.max(1, Math.round(textures / 50));
  const sizes = fileSizes(textures, Math.max(textures, options.bytes - blendBytes), options.maxFile);
  const buffer = Buffer.allocUnsafe(1 << 20);
  const files: string[] = [];
  for (let i = 0; i < textures; i++) {
    const folder = path.join(dir, 'textures', `set_${String(i % folders).padStart(3, '0')}`);
    if (i < folders) mkdirSync(folder, { recursive: true });
    const file = path.join(folder, `tex_${String(i).padStart(5, '0')}.png`);
    writeRandomFile(file, sizes[i] ?? 1, buffer);
    files.push(file);
  }
  const bytes = sizes.reduce((a, b) => a + b, 0) + blendBytes;
  return {
    root: dir,
    blendFile,
    files,
    bytes,
    dependencies: files.map((file) => ({ path: file, kind: 'image', missing: false, relative: true })),
  };
}
