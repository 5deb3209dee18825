// Prepares an AWS job: uploads the project (content-addressed, deduplicated) and writes the manifest
// and then job.json, so a Batch stage never sees a job whose files are not all in the bucket.
import type { Dependency, EventMap } from '../../../protocol/generated/protocol.js';
import { uploadProject } from '../project/upload.js';
import type { IBucket } from './bucket.js';
import { BucketObjectStore } from './bucket-store.js';
import { effectiveChunkSize, jobKeys, type Device, type Market, type WorkerJobDocument } from './layout.js';

export interface UploadRequest {
  jobId: string;
  blendFile: string;
  sourceBlendFile: string;
  projectRoot: string;
  dependencies: Dependency[];
  strict: boolean;
  bucket: IBucket;
  signal?: AbortSignal;
  onProgress?: (progress: EventMap['upload.progress']) => void;
}

export interface UploadOutcome {
  manifestKey: string;
  missing: string[];
  files: number;
  bytesUploaded: number;
  /** The project's bytes (what the copy stage puts on EFS). */
  bytesTotal?: number;
  /**
   * Objects the upload stored outside jobs/<jobId>/ (blobs alone, packs): one PUT each, multipart
   * parts aside. The manifest is under jobs/<jobId>/, counted with the job's other objects.
   */
  objectsStored?: number;
}

/** Objects an upload stored in the content-addressed store: the blobs that went alone, and the packs. */
export function objectsStored(upload: {
  blobsUploaded: number;
  blobsPacked: number;
  packsUploaded: number;
}): number {
  return upload.blobsUploaded - upload.blobsPacked + upload.packsUploaded;
}

/** Puts a project into the farm bucket and writes its manifest. */
export type ProjectUploader = (request: UploadRequest) => Promise<UploadOutcome>;

/** The plain uploader: daemon/src/project/upload.ts over the bucket, manifest at jobs/<jobId>/manifest.json. */
export const uploadToBucket: ProjectUploader = async (request) => {
  const keys = jobKeys(request.jobId);
  const upload = await uploadProject({
    jobId: request.jobId,
    blendFile: request.blendFile,
    sourceBlendFile: request.sourceBlendFile,
    projectRoot: request.projectRoot,
    dependencies: request.dependencies,
    strict: request.strict,
    store: new BucketObjectStore(request.bucket),
    ...(request.signal ? { signal: request.signal } : {}),
    ...(request.onProgress ? { onProgress: request.onProgress } : {}),
  });
  await request.bucket.putJson(keys.manifest, upload.manifest);
  return {
    manifestKey: keys.manifest,
    missing: upload.missing,
    files: upload.files,
    bytesUploaded: upload.bytesUploaded,
    bytesTotal: upload.bytesTotal,
    objectsStored: objectsStored(upload),
  };
};

export interface PrepareRequest {
  jobId: string;
  name: string;
  blendFile: string;
  sourceBlendFile: string;
  projectRoot: string;
  dependencies: Dependency[];
  strict?: boolean;
  scene: string;
  frames: number[];
  chunkSize: number;
  split?: { parts: number; samples: number };
  filePattern: string;
  fileExtension: string;
  device: Device;
  market: Market;
  blenderVersion: string;
  notify?: { to: string; from: string };
  bucket: IBucket;
  region?: string;
  signal?: AbortSignal;
  onProgress?: (progress: EventMap['upload.progress']) => void;
  /** Default: uploadToBucket. */
  upload?: ProjectUploader;
}

export interface PrepareResult {
  job: WorkerJobDocument;
  missing: string[];
  files: number;
  bytesUploaded: number;
  /** The uploader's whole answer (what its storage line reads). */
  upload?: UploadOutcome;
}

export async function prepareJob(request: PrepareRequest): Promise<PrepareResult> {
  const keys = jobKeys(request.jobId);
  const upload = await (request.upload ?? uploadToBucket)({
    jobId: request.jobId,
    blendFile: request.blendFile,
    sourceBlendFile: request.sourceBlendFile,
    projectRoot: request.projectRoot,
    dependencies: request.dependencies,
    strict: request.strict ?? false,
    bucket: request.bucket,
    ...(request.signal ? { signal: request.signal } : {}),
    ...(request.onProgress ? { onProgress: request.onProgress } : {}),
  });
  const job: WorkerJobDocument = {
    version: 1,
    jobId: request.jobId,
    name: request.name,
    sourceBlendFile: request.sourceBlendFile,
    scene: request.scene,
    frames: request.frames,
    chunkSize: effectiveChunkSize(request.frames.length, request.chunkSize),
    ...(request.split ? { split: request.split } : {}),
    filePattern: request.filePattern || 'frame_####',
    fileExtension: request.fileExtension,
    manifestKey: upload.manifestKey,
    device: request.device,
    market: request.market,
    blenderVersion: request.blenderVersion,
    ...(request.notify ? { notify: request.notify } : {}),
    bucket: request.bucket.name,
    ...(request.region ? { region: request.region } : {}),
    createdAt: new Date().toISOString(),
  };
  // Last: a stage that finds job.json finds everything it names.
  await request.bucket.putJson(keys.job, job);
  return { job, missing: upload.missing, files: upload.files, bytesUploaded: upload.bytesUploaded, upload };
}
