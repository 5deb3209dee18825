// hash_ratio_vs_sha256: cold hashing throughput of the daemon's upload path (uploadProject with a
// fresh SQLite hash cache, against a store that already holds every blob, so nothing is sent) ÷ the
// faster of `sha256sum` over the same files and a single-stream node SHA-256 (one file after the
// other). All three read the same files from the page cache; each runs `hashRuns` times, interleaved,
// and its best run counts.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import path from 'node:path';
import { openDatabase } from '../../daemon/src/db/database.js';
import { HashCache } from '../../daemon/src/project/hash-cache.js';
import { uploadProject } from '../../daemon/src/project/upload.js';
import type { IObjectStore } from '../../daemon/src/store/object-store.js';
import { benchProject, mibPerSecond } from '../lib/fixtures.js';
import { check, onPath, run } from '../lib/proc.js';
import type { Project } from '../lib/project.js';
import type { BenchContext, Measurement, Metric } from '../lib/types.js';

/**
 * A store that has every blob: the upload only collects, plans and hashes. It takes bytes like the S3
 * store, so small files' bytes are kept from hashing as they are for a real bucket.
 */
const storeWithEverything: IObjectStore = {
  id: 'bench://everything',
  takesBytes: true,
  hasBlob: async () => true,
  putBlobFromFile: async () => {
    throw new Error('nothing should be uploaded');
  },
  materializeBlob: async () => {
    throw new Error('not used');
  },
  putJson: async () => undefined,
  getJson: async () => undefined,
};

async function skyfarmHash(
  ctx: BenchContext,
  project: Project,
  run: number,
  phases: string[],
): Promise<number> {
  const db = openDatabase(path.join(ctx.tmp, `hash-cache-${run}.sqlite`));
  try {
    const hashCache = new HashCache(db);
    const started = performance.now();
    const result = await uploadProject({
      jobId: null,
      blendFile: project.blendFile,
      sourceBlendFile: project.blendFile,
      projectRoot: project.root,
      dependencies: project.dependencies,
      strict: true,
      store: storeWithEverything,
      hasher: hashCache,
      onPhase: (phase, ms) => {
        if (phase !== 'total') phases.push(`${phase} ${(ms / 1000).toFixed(3)}`);
      },
    });
    const seconds = (performance.now() - started) / 1000;
    if (result.bytesHashed !== project.bytes || result.bytesUploaded !== 0) {
      throw new Error(`hashed ${result.bytesHashed} of ${project.bytes} bytes`);
    }
    return seconds;
  } finally {
    db.close();
  }
}

async function nodeSingleStream(project: Project): Promise<number> {
  const started = performance.now();
  for (const file of [project.blendFile, ...project.files]) {
    const hash = createHash('sha256');
    for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20 }))
      hash.update(chunk as Buffer);
    hash.digest('hex');
  }
  return (performance.now() - started) / 1000;
}

async function sha256sum(binary: string, project: Project): Promise<number> {
  // As a user hashes a tree: `xargs -0 sha256sum`, as few processes as the command line allows (one
  // up to a few thousand files; 100,000 paths do not fit one command line: E2BIG).
  const files = [project.blendFile, ...project.files];
  const result = check(
    'xargs -0 sha256sum',
    await run('xargs', ['-0', binary], { timeoutMs: 30 * 60_000, input: files.join('\0') }),
  );
  const lines = result.stdout.trim().split('\n').length;
  if (lines !== files.length) throw new Error(`sha256sum printed ${lines} lines for ${files.length} files`);
  return result.seconds;
}

export const hashRatioVsSha256: Metric = {
  name: 'hash_ratio_vs_sha256',
  unit: 'MiB/s',
  goal: { on: 'ratio', op: '>=', target: 0.9 },
  async run(ctx): Promise<Measurement> {
    const project = await benchProject(ctx);
    const binary = onPath('sha256sum');
    const phases: string[] = [];
    const times = { skyfarm: [] as number[], node: [] as number[], sha256sum: [] as number[] };
    // Warm the page cache once, so no contender pays for the disk.
    await nodeSingleStream(project);
    for (let i = 0; i < ctx.sizes.hashRuns; i++) {
      times.skyfarm.push(await skyfarmHash(ctx, project, i, phases));
      times.node.push(await nodeSingleStream(project));
      if (binary) times.sha256sum.push(await sha256sum(binary, project));
    }
    const best = (xs: number[]) => (xs.length ? Math.min(...xs) : Infinity);
    const rate = (xs: number[]) => mibPerSecond(project.bytes, best(xs));
    const peers = { node: rate(times.node), sha256sum: binary ? rate(times.sha256sum) : 0 };
    const faster = peers.node >= peers.sha256sum ? 'node single-stream SHA-256' : 'sha256sum';
    return {
      value: rate(times.skyfarm),
      baseline: Math.max(peers.node, peers.sha256sum),
      note:
        `${project.files.length + 1} files, ${(project.bytes / 1024 ** 2).toFixed(0)} MiB from the page cache; ` +
        `baseline = ${faster}` +
        (binary
          ? ` (sha256sum ${peers.sha256sum.toFixed(0)} MiB/s, node ${peers.node.toFixed(0)} MiB/s)`
          : ' (sha256sum not on PATH)'),
      details: {
        files: project.files.length + 1,
        bytes: project.bytes,
        seconds: times,
        skyfarmPhases: phases,
      },
    };
  },
};
