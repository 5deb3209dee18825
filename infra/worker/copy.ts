// copy: materialises the job's manifest into <efs>/jobs/<jobId>/project/ through the EFS-side blob
// cache <efs>/cas/<aa>/<sha256>. A blob is downloaded once (to a temporary name, its hash checked,
// then renamed), and hard-linked into every job folder that uses it: re-rendering a project copies
// nothing from S3. Small blobs come in packs (`packs/<sha256>`, see daemon/src/project/pack-writer.ts):
// a pack holding any blob the cache lacks is downloaded once, and those blobs are cut out of it.
import { createHash } from 'node:crypto';
import { chmod, copyFile, link, mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import {
  blobKey,
  efsPaths,
  jobKeys,
  packKey,
  type WorkerJobDocument,
} from '../../daemon/src/batch/layout.js';
import {
  assertSafeRelativePath,
  type Manifest,
  type ManifestEntry,
} from '../../daemon/src/project/manifest.js';
import { sha256File } from '../../daemon/src/project/hash.js';
import type { WorkerContext } from './context.js';

export interface CopyStats {
  files: number;
  cacheHits: number;
  downloaded: number;
  bytesDownloaded: number;
}

const PARALLEL = 4;

export async function loadJob(ctx: WorkerContext): Promise<{ job: WorkerJobDocument; manifest: Manifest }> {
  const keys = jobKeys(ctx.config.jobId);
  const job = await ctx.bucket.getJson<WorkerJobDocument>(keys.job);
  if (!job) throw new Error(`s3://${ctx.bucket.name}/${keys.job} does not exist: the job was never prepared`);
  if (job.jobId !== ctx.config.jobId) throw new Error(`${keys.job} belongs to job ${job.jobId}`);
  const manifest = await ctx.bucket.getJson<Manifest>(job.manifestKey);
  if (!manifest) throw new Error(`s3://${ctx.bucket.name}/${job.manifestKey} (the manifest) does not exist`);
  return { job, manifest };
}

async function sizeOf(path: string): Promise<number | null> {
  try {
    return (await stat(path)).size;
  } catch {
    return null;
  }
}

/** Makes sure the blob is in the EFS cache; returns whether it was downloaded. */
async function ensureCached(
  ctx: WorkerContext,
  cacheDir: string,
  entry: ManifestEntry,
): Promise<string | null> {
  const cached = join(cacheDir, entry.sha256.slice(0, 2), entry.sha256);
  if ((await sizeOf(cached)) === entry.size) return null;
  await mkdir(dirname(cached), { recursive: true });
  const temp = `${cached}.${randomBytes(6).toString('hex')}.part`;
  try {
    await ctx.bucket.download(blobKey(entry.sha256), temp, ctx.signal);
    const actual = await sha256File(temp, ctx.signal);
    if (actual !== entry.sha256) {
      throw new Error(`blob ${entry.sha256} from S3 hashes to ${actual}: refusing a corrupted file`);
    }
    await chmod(temp, 0o444);
    await rename(temp, cached); // atomic: a concurrent job sees the old or the complete blob
    return cached;
  } finally {
    await rm(temp, { force: true });
  }
}

/** Puts the packed blobs the cache lacks into it, one download per pack; returns those blobs. */
async function ensurePacksCached(
  ctx: WorkerContext,
  cacheDir: string,
  entries: ManifestEntry[],
): Promise<ManifestEntry[]> {
  const byPack = new Map<string, Map<string, ManifestEntry>>();
  for (const entry of entries) {
    if (entry.pack === undefined) continue;
    const cached = join(cacheDir, entry.sha256.slice(0, 2), entry.sha256);
    if ((await sizeOf(cached)) === entry.size) continue;
    let blobs = byPack.get(entry.pack);
    if (!blobs) byPack.set(entry.pack, (blobs = new Map()));
    blobs.set(entry.sha256, entry);
  }
  const fetched: ManifestEntry[] = [];
  const packs = [...byPack];
  let next = 0;
  const worker = async () => {
    while (next < packs.length) {
      const [pack, blobs] = packs[next++]!;
      ctx.signal.throwIfAborted();
      const temp = join(cacheDir, 'packs', `${pack}.${randomBytes(6).toString('hex')}.part`);
      try {
        await ctx.bucket.download(packKey(pack), temp, ctx.signal);
        const bytes = await readFile(temp);
        for (const entry of blobs.values()) {
          const offset = entry.offset ?? 0;
          const data = bytes.subarray(offset, offset + entry.size);
          const actual = createHash('sha256').update(data).digest('hex');
          if (data.length !== entry.size || actual !== entry.sha256) {
            throw new Error(
              `blob ${entry.sha256} at ${offset} in pack ${pack} hashes to ${actual}: refusing a corrupted file`,
            );
          }
          const cached = join(cacheDir, entry.sha256.slice(0, 2), entry.sha256);
          await mkdir(dirname(cached), { recursive: true });
          const part = `${cached}.${randomBytes(6).toString('hex')}.part`;
          try {
            await writeFile(part, data, { mode: 0o444 });
            await rename(part, cached); // atomic, as for single blobs
          } finally {
            await rm(part, { force: true });
          }
          fetched.push(entry);
        }
      } finally {
        await rm(temp, { force: true });
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(PARALLEL, packs.length) }, worker));
  return fetched;
}

async function place(cached: string, dest: string): Promise<void> {
  await mkdir(dirname(dest), { recursive: true });
  await rm(dest, { force: true });
  try {
    await link(cached, dest);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== 'EXDEV' && code !== 'EPERM' && code !== 'EMLINK') throw error;
    await copyFile(cached, dest);
  }
}

export async function copyStage(ctx: WorkerContext): Promise<CopyStats> {
  const { manifest } = await loadJob(ctx);
  const paths = efsPaths(ctx.config.efsRoot, ctx.config.jobId);
  await mkdir(paths.project, { recursive: true });
  await mkdir(paths.output, { recursive: true });
  const entries = Object.entries(manifest.files).map(([relative, entry]) => {
    assertSafeRelativePath(relative);
    return { relative, entry };
  });
  assertSafeRelativePath(manifest.blend);
  const stats: CopyStats = { files: entries.length, cacheHits: 0, downloaded: 0, bytesDownloaded: 0 };
  const fromPacks = await ensurePacksCached(
    ctx,
    paths.cache,
    entries.map((item) => item.entry),
  );
  const fetchedNow = new Set(fromPacks.map((entry) => entry.sha256));
  let next = 0;
  const worker = async () => {
    while (next < entries.length) {
      const item = entries[next++]!;
      ctx.signal.throwIfAborted();
      const cached = join(paths.cache, item.entry.sha256.slice(0, 2), item.entry.sha256);
      const downloaded =
        item.entry.pack === undefined
          ? await ensureCached(ctx, paths.cache, item.entry)
          : fetchedNow.delete(item.entry.sha256) || null;
      if ((await sizeOf(cached)) !== item.entry.size) {
        throw new Error(
          `blob ${item.entry.sha256} (${item.relative}) is not in the EFS cache after the copy`,
        );
      }
      if (downloaded) {
        stats.downloaded += 1;
        stats.bytesDownloaded += item.entry.size;
      } else {
        stats.cacheHits += 1;
      }
      await place(cached, join(paths.project, ...item.relative.split('/')));
    }
  };
  await Promise.all(Array.from({ length: Math.min(PARALLEL, entries.length) }, worker));
  const blend = join(paths.project, ...manifest.blend.split('/'));
  if ((await sizeOf(blend)) === null) throw new Error(`the scene ${manifest.blend} is not in the manifest`);
  ctx.log(
    `copy: ${stats.files} files in ${paths.project} (${stats.cacheHits} from the EFS cache, ` +
      `${stats.downloaded} downloaded, ${stats.bytesDownloaded} bytes)`,
  );
  return stats;
}
