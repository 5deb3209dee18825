// The live text of a split frame (issue #17), "frame F: p/N parts · s/S samples": done parts count
// their share of the frame's samples, and a part still rendering counts the fraction it has done of
// that share, whether it renders a share of the samples (Cycles reports s/share) or a band of rows with
// every sample (4.2/4.3's blue noise: Cycles reports s/S for the band), so the count never runs past
// the frame's samples and reaches them exactly when every part is in.
import t from 'tap';
import type { IBucket, ObjectInfo } from '../daemon/src/batch/bucket.js';
import { jobKeys, type ChunkLive, type PartMarker } from '../daemon/src/batch/layout.js';
import { SplitProgress } from '../daemon/src/batch/split-progress.js';

/** The bucket as the render children leave it: part markers under progress/parts/. */
function bucketWith(markers: PartMarker[]): IBucket {
  const objects = new Map(markers.map((m) => [jobKeys('job-1').part(m.frame, m.part), m]));
  const reader: Pick<IBucket, 'list' | 'getJson'> = {
    list: async (prefix: string): Promise<ObjectInfo[]> =>
      [...objects.keys()].filter((key) => key.startsWith(prefix)).map((key) => ({ key, size: 1, etag: key })),
    getJson: async <T>(key: string): Promise<T | undefined> => objects.get(key) as T | undefined,
  };
  return reader as IBucket;
}

const done = (frame: number, part: number, samples: number): PartMarker => ({
  frame,
  part,
  state: 'done',
  child: part,
  attempt: 1,
  samples,
  at: '2026-12-07T10:00:00.000Z',
});

const live = (chunk: number, frame: number, samplesDone: number, samplesTotal: number): ChunkLive => ({
  version: 1,
  chunk,
  attempt: 1,
  at: '2026-12-07T10:00:01.000Z',
  frame,
  samplesDone,
  samplesTotal,
  reportedSeconds: null,
  secondsPerSample: null,
  elapsedSeconds: 1,
});

t.test('parts that render a share of the samples', async (t) => {
  // 18 samples in 4 parts: 5, 5, 4, 4.
  const progress = new SplitProgress(4, 18);
  await progress.read(bucketWith([done(1, 0, 5)]), 'job-1');
  t.equal(progress.text([1], [live(1, 1, 2, 5), live(2, 1, 4, 4)]), 'frame 1: 1/4 parts · 11/18 samples');
});

t.test('parts that render a band of rows with every sample', async (t) => {
  const progress = new SplitProgress(4, 18);
  await progress.read(bucketWith([done(1, 0, 5)]), 'job-1');
  // Part 1 is half way through its band (9 of 18), part 2 done with its band but not yet marked.
  t.equal(
    progress.text([1], [live(1, 1, 9, 18), live(2, 1, 18, 18)]),
    'frame 1: 1/4 parts · 12/18 samples',
    'half of part 1’s share (5) and all of part 2’s (4), not 9 + 18',
  );
  await progress.read(bucketWith([done(1, 0, 5), done(1, 1, 5), done(1, 2, 4)]), 'job-1');
  t.equal(progress.text([1], [live(3, 1, 18, 18)]), 'frame 1: 3/4 parts · 18/18 samples');
});
