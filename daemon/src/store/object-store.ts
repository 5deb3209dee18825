// The object store a job's project and results live in (DESIGN.md "Object layout"): `cas/<sha256>`
// blobs and `jobs/<jobId>/…` documents. The local backend's store is a folder; the AWS one is S3.
//
// The five core methods are all a store must have. The optional ones let the upload go faster
// (batched presence checks, byte progress) and are used when a store offers them.
export interface IObjectStore {
  /** True when the blob is present (and, for the local store, complete). */
  hasBlob(sha256: string): Promise<boolean>;
  /** Stores a file's bytes under its hash; atomic: readers never see a partial blob. */
  putBlobFromFile(sha256: string, file: string, signal?: AbortSignal): Promise<void>;
  /** Writes the blob to `dest` (a hard link where the store allows it), verifying its hash. */
  materializeBlob(sha256: string, dest: string, signal?: AbortSignal): Promise<void>;
  putJson(key: string, value: unknown): Promise<void>;
  getJson<T>(key: string): Promise<T | undefined>;

  /** Identifies the store (`file:///…`, `s3://bucket@endpoint`) in the daemon's known-blob record. */
  readonly id?: string;
  /** putBlobFromFile with the expected size and byte progress. */
  putBlob?(sha256: string, file: string, options: PutBlobOptions): Promise<void>;
  /**
   * putBlob sends `data` (bytes the caller already read) instead of reading the file again: the upload
   * then keeps small files' bytes from hashing. Stores without it are never handed bytes (holding
   * them would only cost memory).
   */
  readonly takesBytes?: boolean;
  /**
   * Prepares presence checks for about `count` blobs. A store may answer them from one listing
   * instead of one request per blob; `sizeHint` is how many blobs the store is believed to hold.
   */
  presence?(count: number, options: PresenceOptions): PresenceCheck;
  /**
   * Stores small blobs together as one pack object (`packs/<sha256 of the pack>`): one request
   * instead of one per blob. Returns the pack's hash; blob i starts at the sum of the sizes before it.
   */
  putPack?(blobs: PackBlob[], signal?: AbortSignal): Promise<string>;
  /** Blobs up to this size go into packs (when putPack is offered). */
  readonly packBlobMax?: number;
  /** A pack is sealed and sent once it holds this many bytes. */
  readonly packTarget?: number;
  /** materializeBlob for a blob stored inside a pack (a ranged read of the pack). */
  materializePacked?(location: PackedLocation, dest: string, signal?: AbortSignal): Promise<void>;
}

/** A blob's bytes on their way into a pack (hashed by the caller: `data` is `sha256`'s bytes). */
export interface PackBlob {
  sha256: string;
  data: Buffer;
}

/** Where a blob lives inside a pack. */
export interface PackedLocation {
  sha256: string;
  size: number;
  pack: string;
  offset: number;
}

export interface BlobRef {
  sha256: string;
  size: number;
}

export interface PutBlobOptions {
  size: number;
  /** The blob's bytes, already read and hashed by the caller (saves reading the file again). */
  data?: Buffer;
  signal?: AbortSignal;
  /** Called with each increment of bytes sent. */
  onBytes?: (bytes: number) => void;
}

export interface PresenceOptions {
  signal?: AbortSignal;
  sizeHint?: number;
}

export interface PresenceCheck {
  /** Whether the blob is in the store, complete (its size matches). */
  has(blob: BlobRef): Promise<boolean>;
  /** Requests this check made so far (listing pages + single checks), for tests and the bench. */
  readonly requests: number;
  /** When the check listed the store: how many blobs it saw. */
  readonly listed?: number;
  /** Whether a pack is in the store (stores with packs: one listing of `packs/` per check). */
  hasPack?(pack: string): Promise<boolean>;
}

export const SHA256_HEX = /^[0-9a-f]{64}$/;

export function blobKey(sha256: string): string {
  if (!SHA256_HEX.test(sha256)) throw new Error(`not a sha256: ${sha256}`);
  return `cas/${sha256}`;
}

export function packKey(sha256: string): string {
  if (!SHA256_HEX.test(sha256)) throw new Error(`not a sha256: ${sha256}`);
  return `packs/${sha256}`;
}

/** The file (or its bytes) did not hash to the blob it was meant to be: it changed since it was hashed. */
export class BlobChangedError extends Error {
  constructor(
    readonly file: string,
    readonly expected: string,
    readonly actual: string,
  ) {
    super(`${file} changed while it was being uploaded (expected sha256 ${expected}, read ${actual})`);
    this.name = 'BlobChangedError';
  }
}

/** The store returned or kept bytes other than the ones sent (a transport or storage fault). */
export class IntegrityError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'IntegrityError';
  }
}
