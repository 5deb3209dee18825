// The scene upload as a daemon service: `project.upload` (what `skyfarm upload` calls), and the upload
// stage of every render job (local backend now, AWS backend through the same call). It owns the hash
// cache, the known-blob record, the project watcher and the stores.
import { resolve } from 'node:path';
import type { Logger } from 'pino';
import type {
  Backend,
  ProjectUploadParams,
  ProjectUploadResult,
} from '../../../protocol/generated/protocol.js';
import type { Db } from '../db/database.js';
import { SkyfarmError } from '../errors.js';
import type { Notify } from '../notify.js';
import type { ProbeResult } from '../render/blender.js';
import { assertBlendFile, assertLocalBlenderReads } from '../jobs/validate-blend.js';
import type { IObjectStore } from '../store/object-store.js';
import { createS3, s3SettingsFromEnv } from '../store/s3.js';
import { S3ObjectStore, type S3StoreOptions } from '../store/s3-store.js';
import { HashCache } from './hash-cache.js';
import { ManifestDigests } from './manifest-digests.js';
import { KnownBlobs } from './known-blobs.js';
import { uploadManifestKey } from './manifest.js';
import { uploadProject, writeManifest, type UploadRequest, type UploadResult } from './upload.js';
import { ProjectWatcher } from './watcher.js';

/**
 * Blobs of the stores skyfarm writes are never deleted by skyfarm (cas/ has no lifecycle rule), so a
 * blob seen minutes ago is still there unless someone removed it by hand; re-submits within this
 * window cost no S3 request. Older knowledge is confirmed (HEAD or a listing) before it is used.
 */
const DEFAULT_TRUST_SECONDS = 600;
/** Upload manifests remembered as written (see writeUploadManifest). */
const MANIFESTS_REMEMBERED = 1000;

export interface ProjectServiceDeps {
  db: Db;
  /** The local backend's store. */
  localStore: IObjectStore;
  env: NodeJS.ProcessEnv;
  notify: Notify;
  findBlender: () => Promise<{ path: string; version?: readonly number[] }>;
  probeBlend: (blender: string, file: string, scene?: string) => Promise<ProbeResult>;
  log?: Logger;
  /** The farm bucket of a deployed stack (from the stack service's outputs), when there is one. */
  resolveStackBucket?: (stackName: string) => Promise<string>;
  /** The bucket `--backend aws` uses without --bucket/--stack-name (SKYFARM_AWS_BUCKET, the known stack). */
  defaultBucket?: () => string | undefined;
  /** Makes the S3 store for a bucket (tests inject part sizes); default: the real SDK client from `env`. */
  s3Store?: (bucket: string) => IObjectStore;
  s3Options?: S3StoreOptions;
  watcher?: { maxProjects?: number; maxFolders?: number; debounceMs?: number; enabled?: boolean };
}

export interface StoreChoice {
  backend?: Backend;
  bucket?: string;
  stackName?: string;
}

/** A job's (or a standalone) upload, with the daemon's caches filled in. */
export type ServiceUploadRequest = Omit<UploadRequest, 'hasher' | 'known' | 'env'>;

export class ProjectService {
  readonly hashCache: HashCache;
  readonly known: KnownBlobs;
  readonly watcher: ProjectWatcher | undefined;
  private readonly s3Stores = new Map<string, IObjectStore>();
  /** Per store: manifest key → when this daemon wrote that (content-addressed) manifest there. */
  private readonly manifestsWritten = new WeakMap<IObjectStore, Map<string, number>>();
  /** How long a blob seen in a store is taken as still there (SKYFARM_BLOB_TRUST_SECONDS, default 600). */
  readonly trustKnownMs: number;
  private readonly digests: ManifestDigests;

  constructor(private readonly deps: ProjectServiceDeps) {
    const trust = Number(deps.env['SKYFARM_BLOB_TRUST_SECONDS'] ?? DEFAULT_TRUST_SECONDS);
    this.trustKnownMs = Number.isFinite(trust) && trust >= 0 ? trust * 1000 : DEFAULT_TRUST_SECONDS * 1000;
    // A re-submit within the trust window finds the last upload's rows in memory.
    this.hashCache = new HashCache(deps.db, { lingerMs: this.trustKnownMs });
    this.known = new KnownBlobs(deps.db, { lingerMs: this.trustKnownMs });
    this.digests = new ManifestDigests({ lingerMs: this.trustKnownMs });
    this.watcher =
      deps.watcher?.enabled === false
        ? undefined
        : new ProjectWatcher({
            hashCache: this.hashCache,
            ...(deps.watcher?.maxProjects !== undefined ? { maxProjects: deps.watcher.maxProjects } : {}),
            ...(deps.watcher?.maxFolders !== undefined ? { maxFolders: deps.watcher.maxFolders } : {}),
            ...(deps.watcher?.debounceMs !== undefined ? { debounceMs: deps.watcher.debounceMs } : {}),
            ...(deps.log ? { log: deps.log } : {}),
          });
  }

  /** The store a backend uploads to: the local folder, or the farm bucket (`bucket`, else the stack's). */
  async storeFor(choice: StoreChoice): Promise<IObjectStore> {
    if ((choice.backend ?? (choice.bucket || choice.stackName ? 'aws' : 'local')) === 'local') {
      return this.deps.localStore;
    }
    let bucket = choice.bucket;
    if (!bucket && !choice.stackName) bucket = this.deps.defaultBucket?.();
    if (!bucket && choice.stackName) {
      if (!this.deps.resolveStackBucket) {
        throw new SkyfarmError(
          'BACKEND_UNAVAILABLE',
          `cannot look up the bucket of stack "${choice.stackName}" in this daemon; pass --bucket`,
        );
      }
      bucket = await this.deps.resolveStackBucket(choice.stackName);
    }
    if (!bucket) {
      throw new SkyfarmError(
        'BAD_ARGUMENT',
        'the AWS backend needs the farm bucket: pass --bucket B or --stack-name N',
      );
    }
    let store = this.s3Stores.get(bucket);
    if (!store) {
      store = this.deps.s3Store
        ? this.deps.s3Store(bucket)
        : new S3ObjectStore(createS3(s3SettingsFromEnv(bucket, this.deps.env)), this.deps.s3Options);
      this.s3Stores.set(bucket, store);
    }
    return store;
  }

  /** Uploads with the hash cache and known-blob record, then watches the project for changes. */
  async upload(request: ServiceUploadRequest): Promise<UploadResult> {
    const result = await uploadProject({
      ...request,
      hasher: this.hashCache,
      known: this.known,
      trustKnownMs: this.trustKnownMs,
      digests: this.digests,
      env: this.deps.env,
    });
    const watcher = this.watcher;
    // After the reply: choosing the folders of a 100,000-file project takes a tenth of a second.
    if (watcher)
      setImmediate(() => {
        // The project's own files; a temporary copy of the scene (submitted from Blender) is not worth watching.
        const files = result.sources.filter(
          (file) => file !== request.blendFile || file === request.sourceBlendFile,
        );
        watcher.watch(result.root, files).catch((error: unknown) => {
          this.deps.log?.warn({ err: error, root: result.root }, 'could not watch the project');
        });
      });
    return result;
  }

  /** `project.upload`: reads the scene's dependencies (Blender, when the client did not send them) and uploads. */
  async uploadRequest(params: ProjectUploadParams, signal?: AbortSignal): Promise<ProjectUploadResult> {
    const started = performance.now();
    const blendFile = resolve(params.blendFile);
    const sourceBlendFile = resolve(params.sourceBlendFile ?? blendFile);
    const savedBy = await assertBlendFile(blendFile);
    const store = await this.storeFor({
      ...(params.backend ? { backend: params.backend } : {}),
      ...(params.bucket ? { bucket: params.bucket } : {}),
      ...(params.stackName ? { stackName: params.stackName } : {}),
    });
    let dependencies = params.dependencies;
    if (!dependencies) {
      const blender = await this.deps.findBlender();
      assertLocalBlenderReads(blendFile, savedBy, blender);
      dependencies = (await this.deps.probeBlend(blender.path, blendFile, params.scene)).dependencies;
    }
    signal?.throwIfAborted();
    const result = await this.upload({
      jobId: null,
      blendFile,
      sourceBlendFile,
      projectRoot: resolve(params.projectRoot ?? resolve(sourceBlendFile, '..')),
      dependencies,
      strict: params.strict ?? false,
      store,
      ...(signal ? { signal } : {}),
      onProgress: (progress) => this.deps.notify('upload.progress', progress),
    });
    const key = await this.writeUploadManifest(store, result);
    return {
      files: result.files,
      missing: result.missing,
      bytesTotal: result.bytesTotal,
      bytesUploaded: result.bytesUploaded,
      blobsUploaded: result.blobsUploaded,
      packsUploaded: result.packsUploaded,
      filesHashed: result.filesHashed,
      seconds: (performance.now() - started) / 1000,
      manifest: {
        key,
        sha256: result.manifestSha256,
        blend: result.manifest.blend,
        root: result.root,
        files: result.files,
        remaps: result.manifest.remaps,
      },
    };
  }

  /**
   * Writes `manifests/<sha256>.json`, unless this daemon wrote that very manifest to the store within
   * the trust window (an unchanged re-submit: the key names its bytes, and the blobs it lists were
   * trusted the same way), which saves serialising and sending a manifest of every file again.
   */
  private async writeUploadManifest(store: IObjectStore, result: UploadResult): Promise<string> {
    const key = uploadManifestKey(result.manifestSha256);
    let written = this.manifestsWritten.get(store);
    if (!written) this.manifestsWritten.set(store, (written = new Map()));
    const at = written.get(key);
    if (at !== undefined && Date.now() - at < this.trustKnownMs) return key;
    await writeManifest(store, result, null);
    written.delete(key); // re-inserted last: the oldest entries go first
    written.set(key, Date.now());
    if (written.size > MANIFESTS_REMEMBERED) {
      const oldest = written.keys().next().value;
      if (oldest !== undefined) written.delete(oldest);
    }
    return key;
  }

  async close(): Promise<void> {
    await this.watcher?.close();
    this.hashCache.flush();
  }
}
