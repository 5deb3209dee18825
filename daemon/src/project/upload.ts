// Upload stage: puts the .blend and every file it depends on into the object store under their
// hashes (only the blobs the store lacks), then the caller writes the manifest (and job.json) last,
// so a job never references a blob that is not there.
//
//   collect (collect.ts) → plan the tree (tree.ts) → [strict: refuse when anything is missing]
//   → hash each file (hash cache) → confirm presence (known record + HEAD/listing) → upload the rest
//
// Hashing, presence checks and uploads overlap: a file is checked and sent as soon as it is hashed.
import { createHash } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import { readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Dependency, EventMap } from '../../../protocol/generated/protocol.js';
import { SkyfarmError } from '../errors.js';
import { Fifo } from '../util/fifo.js';
import { pathsText } from './missing.js';
import {
  BlobChangedError,
  type BlobRef,
  type IObjectStore,
  type PackedLocation,
  type PresenceCheck,
} from '../store/object-store.js';
import { collectFiles } from './collect.js';
import { fileIdentity, sha256Read, type FileIdentity, type HashedFile } from './hash-cache.js';
import type { KnownBlobs, StoredBlob } from './known-blobs.js';
import {
  canonicalManifest,
  jobManifestKey,
  type ManifestDraft,
  type ManifestEntry,
  uploadManifestKey,
  type Manifest,
} from './manifest.js';
import type { ManifestDigests } from './manifest-digests.js';
import { PackWriter } from './pack-writer.js';
import { planTree, type TreeEntry } from './tree.js';

export interface FileHasher {
  /**
   * `identity`: the caller's fresh stat of the file, when it has one; `keepBytes`: return the bytes
   * of a small file read for hashing (the upload sends them without reading the file again).
   */
  hash(path: string, signal?: AbortSignal, identity?: FileIdentity, keepBytes?: boolean): Promise<HashedFile>;
  forget?(path: string): void;
  /**
   * Reads what it knows of these files at once, until `release` (an upload asks about every file);
   * returns the hashes it expects them to have.
   */
  preload?(paths: string[]): { sha256s: string[]; release: () => void };
  /** The file's hash at once, when it is known for this identity (no slot, no promise). */
  cached?(path: string, identity: FileIdentity): HashedFile | undefined;
  /** `cached`'s hash alone (no object per file: a re-submit asks about every file). */
  cachedSha256?(path: string, identity: FileIdentity): string | undefined;
}

/** Hashing without a cache (tests, one-off tools). */
export const plainHasher: FileHasher = {
  async hash(path, signal, known, keepBytes) {
    const identity = known ?? (await fileIdentity(path));
    return {
      ...identity,
      ...(await sha256Read(path, signal, identity.size, keepBytes ?? false)),
      cached: false,
    };
  },
};

/** The job of a blob taken as present from the known-blob record. */
const TRUSTED: Promise<void> = Promise.resolve();

/** Small files' bytes are kept from hashing to sending, up to this much memory in all. */
const KEEP_BYTES_MAX = 4 * 1024 * 1024;
const HELD_BYTES_BUDGET = 64 * 1024 * 1024;

export type UploadPhase = 'plan' | 'transfer' | 'total';

export interface UploadRequest {
  jobId: string | null;
  /** The file whose bytes are uploaded as the scene. */
  blendFile: string;
  /** Where the scene lives for the user; its relative paths hang off this location. */
  sourceBlendFile: string;
  /** A folder the project root must include (default: the .blend's folder). */
  projectRoot: string;
  dependencies: Dependency[];
  /** Refuse (MISSING_DEPENDENCIES) before uploading anything when a file is missing. */
  strict: boolean;
  store: IObjectStore;
  /** The daemon's hash cache (default: hash everything). */
  hasher?: FileHasher;
  /** The daemon's record of blobs seen in stores. */
  known?: KnownBlobs;
  /**
   * Blobs the record saw in the store this recently are not asked about again (default 0: confirm
   * every blob with the store). The daemon uses 10 minutes: an artist's re-submits cost no request.
   */
  trustKnownMs?: number;
  /** The last manifests' hashes (an unchanged re-submit is compared, not serialised again). */
  digests?: ManifestDigests;
  /** Environment of the submitting side: `OCIO` adds the colour config. */
  env?: NodeJS.ProcessEnv;
  signal?: AbortSignal;
  onProgress?: (progress: EventMap['upload.progress']) => void;
  /** Minimum time between progress events (default 250 ms); the last one is always sent. */
  progressIntervalMs?: number;
  /** Files hashed at once (default 4). */
  hashConcurrency?: number;
  /** Presence checks at once (default 32). */
  checkConcurrency?: number;
  /** Blob uploads at once (default 16). */
  uploadConcurrency?: number;
  /** Bench hook: each phase's duration in milliseconds. */
  onPhase?: (phase: UploadPhase, ms: number) => void;
}

export interface UploadResult {
  files: number;
  missing: string[];
  bytesTotal: number;
  bytesUploaded: number;
  blobsUploaded: number;
  /** Packs stored (small blobs travel in packs: see pack-writer.ts). */
  packsUploaded: number;
  /** Of blobsUploaded, those stored inside packs (the rest went up one object each). */
  blobsPacked: number;
  /** Files whose hash was computed (not found in the hash cache). */
  filesHashed: number;
  bytesHashed: number;
  /** Blobs the known record listed that the store no longer had (uploaded again). */
  blobsVanished: number;
  /** Requests the presence check made (listing pages + HEADs). */
  presenceRequests: number;
  /** Blobs taken as present from the known-blob record (seen within trustKnownMs). */
  blobsTrusted: number;
  root: string;
  /** Absolute paths of the files read (the .blend first). */
  sources: string[];
  manifest: Manifest;
  manifestSha256: string;
  timings: Record<UploadPhase, number>;
}

class Progress {
  private filesDone = 0;
  private bytesDone = 0;
  private inflight = 0;
  private lastEmit = 0;
  private readonly started = Date.now();

  constructor(
    private readonly request: UploadRequest,
    private readonly filesTotal: number,
    private readonly bytesTotal: number,
  ) {}

  sending(bytes: number): void {
    this.inflight += bytes;
    this.emit(false);
  }

  blobFinished(sent: number): void {
    this.inflight -= sent;
  }

  fileDone(size: number): void {
    this.filesDone += 1;
    this.bytesDone += size;
    this.emit(false);
  }

  /** Many files done at once (the unchanged files of a re-submit). */
  filesDoneAll(files: number, bytes: number): void {
    this.filesDone += files;
    this.bytesDone += bytes;
    this.emit(false);
  }

  emit(force: boolean): void {
    const onProgress = this.request.onProgress;
    if (!onProgress) return;
    const now = Date.now();
    if (!force && now - this.lastEmit < (this.request.progressIntervalMs ?? 250)) return;
    this.lastEmit = now;
    const bytesDone = Math.min(this.bytesTotal, Math.max(0, this.bytesDone + this.inflight));
    const elapsed = (now - this.started) / 1000;
    const rate = elapsed > 0 ? bytesDone / elapsed : 0;
    onProgress({
      jobId: this.request.jobId,
      filesDone: this.filesDone,
      filesTotal: this.filesTotal,
      bytesDone,
      bytesTotal: this.bytesTotal,
      bytesPerSecond: rate,
      etaSeconds: rate > 0 ? (this.bytesTotal - bytesDone) / rate : null,
    });
  }
}

/**
 * A counting semaphore for one upload: every file waits on these at once, so an abort rejects all
 * waiters through one listener (a listener per waiter makes each add and remove scan them all).
 */
class Slots {
  private active = 0;
  private readonly waiting = new Fifo<{ grant: () => void; fail: (reason: unknown) => void }>();

  constructor(
    private readonly limit: number,
    private readonly signal: AbortSignal,
  ) {
    signal.addEventListener(
      'abort',
      () => {
        for (const waiter of this.waiting.drain()) waiter.fail(signal.reason);
      },
      { once: true },
    );
  }

  async acquire(): Promise<() => void> {
    this.signal.throwIfAborted();
    if (this.active < this.limit) this.active += 1;
    else await new Promise<void>((grant, fail) => this.waiting.push({ grant, fail })); // handed over
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.waiting.shift();
      if (next)
        next.grant(); // the slot passes straight to the next waiter
      else this.active -= 1;
    };
  }
}

/** Presence through hasBlob for stores without a batched check. */
function fallbackPresence(store: IObjectStore): PresenceCheck {
  let requests = 0;
  return {
    get requests() {
      return requests;
    },
    has: async (blob: BlobRef) => {
      requests += 1;
      return store.hasBlob(blob.sha256);
    },
  };
}

export async function uploadProject(request: UploadRequest): Promise<UploadResult> {
  const t0 = performance.now();
  const { store } = request;
  const hasher = request.hasher ?? plainHasher;
  const collection = await collectFiles(request.dependencies, {
    blendDir: dirname(request.sourceBlendFile),
    ...(request.env ? { env: request.env } : {}),
  });
  if (request.strict && collection.missing.length > 0) {
    throw new SkyfarmError(
      'MISSING_DEPENDENCIES',
      `${collection.missing.length} file(s) the scene needs are missing (--strict): ${pathsText(collection.missing)}`,
    );
  }
  const tree = await planTree({
    blendFile: request.blendFile,
    sourceBlendFile: request.sourceBlendFile,
    rootHint: request.projectRoot,
    files: collection.files,
    env: collection.env,
  });
  const tPlan = performance.now();
  request.onPhase?.('plan', tPlan - t0);

  // One controller for the whole transfer: the first failure (or the caller's abort) stops the rest.
  const controller = new AbortController();
  setMaxListeners(0, controller.signal); // one listener per waiting file and request
  const onAbort = () => controller.abort(request.signal?.reason);
  if (request.signal?.aborted) onAbort();
  else request.signal?.addEventListener('abort', onAbort, { once: true });
  const signal = controller.signal;

  const storeId = store.id ?? 'store';
  const bytesTotal = tree.entries.reduce((sum, entry) => sum + entry.size, 0);
  const progress = new Progress(request, tree.entries.length, bytesTotal);
  progress.emit(true);
  const presence =
    store.presence?.(tree.entries.length, {
      signal,
      sizeHint: request.known?.sizeHint(storeId) ?? 0,
    }) ?? fallbackPresence(store);
  // What the hash cache and the known-blob record hold for this project, read in a few statements.
  const hashRows = hasher.preload?.(tree.entries.map((entry) => entry.source));
  const releaseKnown = request.known?.preload(storeId, hashRows?.sha256s ?? [], tree.entries.length);
  const releaseRows = () => {
    hashRows?.release();
    releaseKnown?.();
  };
  const hashSlots = new Slots(request.hashConcurrency ?? 4, signal);
  const checkSlots = new Slots(request.checkConcurrency ?? 32, signal);
  const uploadSlots = new Slots(request.uploadConcurrency ?? 16, signal);

  /** Each tree entry's manifest entry, by its index in the tree (the same order every time). */
  const entries = new Array<ManifestEntry>(tree.entries.length);
  const blobJobs = new Map<string, Promise<void>>();
  const present: StoredBlob[] = [];
  /** Where small blobs are inside packs: stored by this upload, or seen there before. */
  const packed = new Map<string, PackedLocation>();
  /** Entries made by processFile: their pack location (if any) is filled in at the end. */
  const located: ManifestEntry[] = [];
  const packWriter =
    store.putPack && (store.packBlobMax ?? 0) > 0
      ? new PackWriter({
          put: (blobs, packSignal) => store.putPack!(blobs, packSignal),
          target: store.packTarget ?? 8 * 1024 * 1024,
          signal,
          onStored: (locations, bytes) => {
            for (const location of locations) {
              packed.set(location.sha256, location);
              present.push(location);
            }
            bytesUploaded += bytes;
            blobsUploaded += locations.length;
            blobsPacked += locations.length;
            progress.sending(bytes);
            progress.blobFinished(bytes);
          },
        })
      : undefined;
  const packBlobMax = packWriter ? (store.packBlobMax ?? 0) : -1;
  /** A small blob's bytes into a pack: the ones read for hashing, else the file read and checked. */
  const addToPack = async (blob: BlobRef, source: string, data?: Buffer): Promise<void> => {
    let bytes = data?.length === blob.size ? data : undefined;
    if (!bytes) {
      bytes = await readFile(source, { signal });
      const actual = createHash('sha256').update(bytes).digest('hex');
      if (actual !== blob.sha256 || bytes.length !== blob.size) {
        throw new BlobChangedError(source, blob.sha256, actual);
      }
    }
    await packWriter!.add({ sha256: blob.sha256, data: bytes });
  };
  const vanished: string[] = [];
  let bytesUploaded = 0;
  let blobsUploaded = 0;
  let blobsPacked = 0;
  let filesHashed = 0;
  let bytesHashed = 0;
  let blobsTrusted = 0;
  let heldBytes = 0;

  const ensureBlob = (blob: BlobRef, source: string, data?: Buffer): Promise<void> => {
    let job = blobJobs.get(blob.sha256);
    if (job) return job;
    if (request.known?.seenRecently(storeId, blob, request.trustKnownMs ?? 0)) {
      const location = request.known.packed(storeId, blob);
      if (location) packed.set(blob.sha256, location);
      blobsTrusted += 1;
      job = TRUSTED;
      blobJobs.set(blob.sha256, job);
      return job;
    }
    job = (async () => {
      let release = await checkSlots.acquire();
      let there: boolean;
      // Seen inside a pack before: that pack's presence answers for it.
      const wasPacked = request.known?.packed(storeId, blob);
      try {
        there =
          wasPacked && presence.hasPack ? await presence.hasPack(wasPacked.pack) : await presence.has(blob);
      } finally {
        release();
      }
      if (there && wasPacked) {
        packed.set(blob.sha256, wasPacked);
        present.push(wasPacked);
        return;
      }
      if (!there) {
        if (request.known?.has(storeId, blob)) vanished.push(blob.sha256);
        if (blob.size <= packBlobMax) {
          await addToPack(blob, source, data);
          return; // present once its pack is stored (finish, below)
        }
        release = await uploadSlots.acquire();
        let sent = 0;
        try {
          const onBytes = (bytes: number) => {
            sent += bytes;
            progress.sending(bytes);
          };
          if (store.putBlob) {
            await store.putBlob(blob.sha256, source, {
              size: blob.size,
              signal,
              onBytes,
              ...(data ? { data } : {}),
            });
          } else {
            await store.putBlobFromFile(blob.sha256, source, signal);
            onBytes(blob.size);
          }
        } finally {
          progress.blobFinished(sent);
          release();
        }
        bytesUploaded += blob.size;
        blobsUploaded += 1;
      }
      present.push(blob);
    })();
    // A blob whose upload failed may be retried by another file with the same bytes.
    job.catch(() => blobJobs.delete(blob.sha256));
    blobJobs.set(blob.sha256, job);
    return job;
  };

  const processFile = async (entry: TreeEntry, index: number): Promise<void> => {
    // A temporary copy of the scene (submitted from Blender) is new every time: not worth a cache row.
    const fileHasher =
      entry.kind === 'blend' && request.blendFile !== request.sourceBlendFile ? plainHasher : hasher;
    // An unchanged file (a re-submit): its hash at once, no hashing slot to wait for.
    let firstAttempt = 1;
    const known = entry.identity && fileHasher.cached?.(entry.source, entry.identity);
    if (known) {
      try {
        await ensureBlob({ sha256: known.sha256, size: known.size }, entry.source);
        located.push((entries[index] = { sha256: known.sha256, size: known.size, mode: entry.mode }));
        progress.fileDone(known.size);
        return;
      } catch (error) {
        // Saved again since it was stated: hash it again, once (as below).
        if (!(error instanceof BlobChangedError)) throw error;
        fileHasher.forget?.(entry.source);
        firstAttempt = 2;
      }
    }
    for (let attempt = firstAttempt; ; attempt++) {
      const release = await hashSlots.acquire();
      let hashed: HashedFile;
      // A small file read for hashing is sent from memory if its blob is missing, within a budget
      // (to a store that sends bytes: the local store copies the file itself).
      const keep =
        store.takesBytes === true &&
        entry.size <= KEEP_BYTES_MAX &&
        heldBytes + entry.size <= HELD_BYTES_BUDGET;
      if (keep) heldBytes += entry.size;
      try {
        // The collection's stat on the first try; after a BlobChangedError the file is stated again.
        hashed = await fileHasher.hash(
          entry.source,
          signal,
          attempt === 1 ? entry.identity : undefined,
          keep,
        );
      } catch (error) {
        if (keep) heldBytes -= entry.size;
        throw error;
      } finally {
        release();
      }
      if (!hashed.cached) {
        filesHashed += 1;
        bytesHashed += hashed.size;
      }
      try {
        await ensureBlob({ sha256: hashed.sha256, size: hashed.size }, entry.source, hashed.bytes);
      } catch (error) {
        // Saved again between hashing and sending: hash it again, once.
        if (error instanceof BlobChangedError && attempt < 2) {
          fileHasher.forget?.(entry.source);
          continue;
        }
        throw error;
      } finally {
        if (keep) heldBytes -= entry.size;
      }
      located.push((entries[index] = { sha256: hashed.sha256, size: hashed.size, mode: entry.mode }));
      progress.fileDone(hashed.size);
      return;
    }
  };

  // Unchanged files whose blob the record saw recently (a re-submit): done here, in one pass, without
  // a promise or an object per file; only the others go through processFile.
  const trustMs = request.trustKnownMs ?? 0;
  const rest: number[] = [];
  let quickFiles = 0;
  let quickBytes = 0;
  for (let index = 0; index < tree.entries.length; index++) {
    const entry = tree.entries[index]!;
    const sha256 =
      entry.identity &&
      trustMs > 0 &&
      request.known &&
      (entry.kind !== 'blend' || request.blendFile === request.sourceBlendFile)
        ? hasher.cachedSha256?.(entry.source, entry.identity)
        : undefined;
    if (sha256 === undefined) {
      rest.push(index);
      continue;
    }
    const size = entry.identity!.size;
    const job = blobJobs.get(sha256);
    const row =
      job === undefined || job === TRUSTED
        ? request.known!.recentRow(storeId, sha256, size, trustMs)
        : undefined;
    if (!row) {
      rest.push(index); // the same bytes as a file in flight, or a blob to confirm with the store
      continue;
    }
    if (job !== TRUSTED) {
      blobsTrusted += 1;
      blobJobs.set(sha256, TRUSTED);
    }
    entries[index] =
      row.pack !== null
        ? { sha256, size, mode: entry.mode, pack: row.pack, offset: row.pack_offset ?? 0 }
        : { sha256, size, mode: entry.mode };
    quickFiles += 1;
    quickBytes += size;
  }
  if (quickFiles > 0) progress.filesDoneAll(quickFiles, quickBytes);

  const outcomes = await Promise.allSettled(
    rest.map((index) =>
      processFile(tree.entries[index]!, index).catch((error: unknown) => {
        if (!signal.aborted) controller.abort(error);
        throw error;
      }),
    ),
  );
  // The last pack goes now: every small blob is in one.
  const packing = packWriter
    ?.finish()
    .then(
      (packs) => packs,
      (error: unknown) => {
        if (!signal.aborted) controller.abort(error);
        throw error;
      },
    )
    .finally(releaseRows);
  if (!packing) releaseRows();
  const packsUploaded = await packing?.catch(() => 0);
  request.signal?.removeEventListener('abort', onAbort);
  if (request.signal?.aborted) {
    throw new SkyfarmError('CANCELED', 'the upload was canceled', { cause: request.signal.reason });
  }
  const failure = outcomes.find((o): o is PromiseRejectedResult => o.status === 'rejected');
  if (failure || signal.aborted) {
    const reason: unknown = signal.reason ?? failure?.reason;
    if (reason instanceof BlobChangedError) {
      throw new SkyfarmError('BAD_ARGUMENT', `${reason.message}; save your work and submit again`, {
        cause: reason,
      });
    }
    throw reason;
  }
  progress.emit(true);

  if (request.known) {
    request.known.forget(storeId, vanished);
    request.known.markPresent(storeId, present);
    if (presence.listed !== undefined) request.known.recordListing(storeId, presence.listed);
  }
  if (packed.size > 0) {
    for (const entry of located) {
      const location = packed.get(entry.sha256);
      if (location) {
        entry.pack = location.pack;
        entry.offset = location.offset;
      }
    }
  }
  const draft: ManifestDraft = {
    paths: tree.entries.map((entry) => entry.path),
    entries,
    rest: {
      version: 1,
      blend: tree.blend,
      remaps: tree.remaps,
      root: tree.root,
      ...(Object.keys(tree.env).length ? { env: tree.env } : {}),
      ...(collection.missing.length ? { missing: collection.missing } : {}),
    },
  };
  // An unchanged re-submit gets the last manifest back (sorted and hashed already).
  const { manifest, sha256: manifestSha256 } = request.digests?.digest(draft) ?? canonicalManifest(draft);
  const tEnd = performance.now();
  request.onPhase?.('transfer', tEnd - tPlan);
  request.onPhase?.('total', tEnd - t0);
  return {
    files: tree.entries.length,
    missing: collection.missing,
    bytesTotal,
    bytesUploaded,
    blobsUploaded,
    packsUploaded: packsUploaded ?? 0,
    blobsPacked,
    filesHashed,
    bytesHashed,
    blobsVanished: vanished.length,
    presenceRequests: presence.requests,
    blobsTrusted,
    root: tree.root,
    sources: tree.entries.map((entry) => entry.source),
    manifest,
    manifestSha256,
    timings: { plan: tPlan - t0, transfer: tEnd - tPlan, total: tEnd - t0 },
  };
}

/**
 * Writes the manifest, after every blob it names is in the store: `jobs/<jobId>/manifest.json` for a
 * job (then the caller writes job.json), else `manifests/<sha256>.json` (a pre-synced project).
 */
export async function writeManifest(
  store: IObjectStore,
  result: UploadResult,
  jobId: string | null,
): Promise<string> {
  const key = jobId ? jobManifestKey(jobId) : uploadManifestKey(result.manifestSha256);
  await store.putJson(key, result.manifest);
  return key;
}
