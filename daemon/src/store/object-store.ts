// The object store a job's project and results live in (DESIGN.md "Object layout"): `cas/<sha256>`
// blobs and `jobs/<jobId>/…` documents. The local backend's store is a folder; the AWS one is S3.
export interface IObjectStore {
  /** True when the blob is present (and, for the local store, complete). */
  hasBlob(sha256: string): Promise<boolean>;
  /** Stores a file's bytes under its hash; atomic: readers never see a partial blob. */
  putBlobFromFile(sha256: string, file: string, signal?: AbortSignal): Promise<void>;
  /** Writes the blob to `dest` (a hard link where the store allows it), verifying its hash. */
  materializeBlob(sha256: string, dest: string, signal?: AbortSignal): Promise<void>;
  putJson(key: string, value: unknown): Promise<void>;
  getJson<T>(key: string): Promise<T | undefined>;
}
