// Progress of split frames (issue #17) for the AWS backend: the parts' markers
// (progress/parts/<frame>/<part>.json) and the live samples of the parts rendering now, as
// "frame 12: 5/8 parts · 640/1024 samples" for the frame furthest along that is not published yet.
import { jobKeys, type ChunkLive, type PartMarker } from './layout.js';
import type { IBucket } from './bucket.js';
import { partSamples } from '../split/plan.js';

/** Part markers read per poll at most (the rest on the next poll): S3 GETs stay bounded. */
export const MAX_PART_READS_PER_POLL = 64;

export class SplitProgress {
  private readonly markers = new Map<string, { etag: string; marker: PartMarker | undefined }>();

  constructor(
    readonly parts: number,
    readonly samples: number,
  ) {}

  /** Reads the part markers that are new or changed since the last call. */
  async read(bucket: IBucket, jobId: string): Promise<void> {
    const listed = await bucket.list(jobKeys(jobId).partsPrefix);
    const changed = listed
      .filter((object) => object.key.endsWith('.json') && this.markers.get(object.key)?.etag !== object.etag)
      .slice(0, MAX_PART_READS_PER_POLL);
    for (const object of changed) {
      const marker = await bucket.getJson<PartMarker>(object.key);
      this.markers.set(object.key, { etag: object.etag, marker: marker ?? undefined });
    }
  }

  /** The newest done part whose marker names a preview of the merge so far, written after `after`. */
  newestPreview(after: string): PartMarker | undefined {
    let newest: PartMarker | undefined;
    for (const { marker } of this.markers.values()) {
      if (marker?.state !== 'done' || !marker.preview || marker.at <= after) continue;
      if (!newest || marker.at > newest.at) newest = marker;
    }
    return newest;
  }

  /** Done parts and the samples they hold, per frame. */
  private doneParts(): Map<number, Map<number, number>> {
    const byFrame = new Map<number, Map<number, number>>();
    for (const { marker } of this.markers.values()) {
      if (marker?.state !== 'done') continue;
      const parts = byFrame.get(marker.frame) ?? new Map<number, number>();
      parts.set(marker.part, marker.samples ?? 0);
      byFrame.set(marker.frame, parts);
    }
    return byFrame;
  }

  /**
   * `frame F: p/N parts · s/S samples` for the unpublished frame with the most samples so far (done
   * parts plus the samples live reports give for parts still rendering), or null before any.
   */
  text(unpublished: Iterable<number>, live: ChunkLive[]): string | null {
    const done = this.doneParts();
    let best: { frame: number; parts: number; samples: number } | null = null;
    for (const frame of unpublished) {
      const parts = done.get(frame) ?? new Map<number, number>();
      let samples = [...parts.values()].reduce((sum, value) => sum + value, 0);
      for (const report of live) {
        if (report.frame !== frame || parts.has(report.chunk % this.parts)) continue;
        // A part rendering counts as the done fraction of its share of the frame: a share of the
        // samples reports its own samples; a band of rows (split_rules.py) reports every sample of it.
        const part = report.chunk % this.parts;
        const share = partSamples(this.samples, this.parts, part);
        const fraction = report.samplesTotal > 0 ? Math.min(report.samplesDone / report.samplesTotal, 1) : 0;
        samples += Math.round(share * fraction);
      }
      if (samples > 0 && (!best || samples > best.samples)) best = { frame, parts: parts.size, samples };
    }
    if (!best) return null;
    return (
      `frame ${best.frame}: ${best.parts}/${this.parts} parts · ` +
      `${Math.min(best.samples, this.samples)}/${this.samples} samples`
    );
  }
}
