// Small blobs of an upload go to the store in packs (`packs/<sha256>`: the blobs' bytes back to back)
// instead of one object each. A project of 100,000 small files (a fluid cache, a texture library) is
// then a few hundred requests, not 100,000: S3 charges and waits per request, and so does the farm's
// copy stage reading them back. The manifest says where each blob is (pack and offset); every reader
// checks the blob's own SHA-256, and S3 checks the pack's on the way in.
//
// A blob is accepted at once and its location known once its pack is stored: the upload never waits
// for a pack to fill (the last one is sent by `finish`). Packs in flight are bounded, so memory is at
// most (`inFlight` + 1) × `target` bytes.
import type { PackBlob, PackedLocation } from '../store/object-store.js';
import { Semaphore } from '../util/semaphore.js';

export interface PackWriterOptions {
  /** Stores one pack; returns its SHA-256. */
  put(blobs: PackBlob[], signal: AbortSignal): Promise<string>;
  /** A pack is sent once it holds this many bytes. */
  target: number;
  /** Packs sent at once (default 4). */
  inFlight?: number;
  signal: AbortSignal;
  /** A pack was stored: its blobs' locations and its bytes. */
  onStored(locations: PackedLocation[], bytes: number): void;
}

export class PackWriter {
  private blobs: PackBlob[] = [];
  private bytes = 0;
  private readonly queued = new Set<string>();
  private readonly sending: Array<Promise<void>> = [];
  private readonly slots: Semaphore;
  private failure: unknown;
  packs = 0;

  constructor(private readonly options: PackWriterOptions) {
    this.slots = new Semaphore(options.inFlight ?? 4);
  }

  /** Takes the blob into the current pack; waits only while too many packs are on their way. */
  async add(blob: PackBlob): Promise<void> {
    if (this.failure !== undefined) throw this.failure;
    if (this.queued.has(blob.sha256)) return;
    this.queued.add(blob.sha256);
    this.blobs.push(blob);
    this.bytes += blob.data.length;
    if (this.bytes >= this.options.target) await this.seal();
  }

  /** Sends what is left and waits for every pack; throws the first failure. */
  async finish(): Promise<number> {
    if (this.blobs.length > 0) await this.seal();
    await Promise.allSettled(this.sending);
    if (this.failure !== undefined) throw this.failure;
    return this.packs;
  }

  private async seal(): Promise<void> {
    const blobs = this.blobs;
    const bytes = this.bytes;
    this.blobs = [];
    this.bytes = 0;
    const release = await this.slots.acquire(this.options.signal);
    const sent = (async () => {
      try {
        const pack = await this.options.put(blobs, this.options.signal);
        const locations: PackedLocation[] = [];
        let offset = 0;
        for (const blob of blobs) {
          locations.push({ sha256: blob.sha256, size: blob.data.length, pack, offset });
          offset += blob.data.length;
        }
        this.packs += 1;
        this.options.onStored(locations, bytes);
      } catch (error) {
        this.failure ??= error;
      } finally {
        release();
      }
    })();
    this.sending.push(sent);
  }
}
