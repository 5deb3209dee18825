// The AWS backend's in-frame progress, in-process (Batch and bucket stand-ins, injected clock): the
// render chunks' live reports (jobs/<id>/progress/live/<chunk>.json, written by the worker) give the
// job's progress, ETA and live frame, which run on between reads; S3 reads stay bounded (one listing
// per poll while chunks run, only changed reports fetched, at most MAX_LIVE_READS_PER_POLL, the least
// recently read first); nothing is listed while no chunk runs. Through the HTTP fakes and real
// Blender: test/batch-progress-in-frame.test.ts.
import t, { type Test } from 'tap';
import { MAX_LIVE_READS_PER_POLL } from '../daemon/src/batch/aws-backend.js';
import type { BatchJobInfo, BatchStatus, IBatch } from '../daemon/src/batch/batch-api.js';
import type { IBucket, ObjectInfo } from '../daemon/src/batch/bucket.js';
import { jobKeys, type ChunkLive } from '../daemon/src/batch/layout.js';
import type { PrepareResult } from '../daemon/src/batch/prepare.js';
import { awsBackendHarness } from './helpers/aws-backend.js';
import { until } from './helpers/until.js';

const keys = jobKeys('j_live');

function report(chunk: number, fields: Partial<ChunkLive>): ChunkLive {
  return {
    version: 1,
    chunk,
    attempt: 1,
    at: '2026-11-27T12:00:00.000Z',
    frame: chunk + 1,
    samplesDone: 0,
    samplesTotal: 0,
    reportedSeconds: null,
    secondsPerSample: null,
    elapsedSeconds: 0,
    ...fields,
  };
}

/** A job of two frames (chunks of one) whose render runs (or has `renderStatus`), polled by hand. */
async function following(t: Test, renderStatus: BatchStatus = 'RUNNING') {
  const h = awsBackendHarness(t, { jobId: 'j_live', name: 'live job' });
  let clock = Date.UTC(2026, 10, 27, 12, 0, 0);
  const docs = new Map<string, { etag: string; doc: ChunkLive }>();
  const lists: string[] = [];
  const gets: string[] = [];
  const batch: IBatch = {
    describe: async (ids) =>
      ids.map((jobId): BatchJobInfo => {
        const stage = jobId.split('-').pop();
        if (stage === 'copy') return { jobId, name: jobId, status: 'SUCCEEDED', attempts: [] };
        if (stage === 'render')
          return {
            jobId,
            name: jobId,
            status: renderStatus,
            attempts: [],
            arraySize: 2,
            statusSummary: renderStatus === 'RUNNING' ? { RUNNING: 2 } : { RUNNABLE: 2 },
          };
        return { jobId, name: jobId, status: 'PENDING', attempts: [] };
      }),
    submit: async (request) => ({ jobId: `id-${request.name}` }),
    findByName: async () => [],
    terminate: async () => undefined,
  };
  const bucket = {
    name: 'bucket',
    list: async (prefix: string): Promise<ObjectInfo[]> => {
      lists.push(prefix);
      if (prefix !== keys.livePrefix) return [];
      return [...docs].map(([key, { etag }]) => ({ key, etag, size: 100 }));
    },
    getJson: async (key: string) => {
      gets.push(key);
      return docs.get(key)?.doc;
    },
  } as unknown as IBucket;
  const backend = h.backend(
    { batch, bucket },
    {
      pollFastMs: 3_600_000, // after the first poll, polls happen when the test calls pollOnce()
      pollSlowMs: 3_600_000,
      now: () => clock,
      prepare: async (): Promise<PrepareResult> => ({
        job: { frames: [1, 2], chunkSize: 1 } as PrepareResult['job'],
        missing: [],
        files: 1,
        bytesUploaded: 1,
      }),
    },
  );
  t.teardown(() => backend.stopAll());
  backend.submit(h.spec, { farm: h.farm, device: 'cpu', market: 'spot', blenderVersion: '4.2.3' });
  await until('the first poll', () => h.updates.some((u) => u.state === 'rendering'));
  let version = 0;
  return {
    ...h,
    backend,
    lists,
    gets,
    /** The worker (over)writes chunk `chunk`'s report. */
    put: (doc: ChunkLive) => docs.set(keys.live(doc.chunk), { etag: `"e${++version}"`, doc }),
    advance: (ms: number) => (clock += ms),
  };
}

t.test('live reports give progress, ETA and the frame rendering; the estimate runs on', async (t) => {
  const f = await following(t);
  // Chunk 0: frame 1 a quarter done at 0.1 s per sample; chunk 1: frame 2 started 3 s ago, no samples yet.
  f.put(
    report(0, {
      samplesDone: 250,
      samplesTotal: 1000,
      reportedSeconds: 25,
      secondsPerSample: 0.1,
      elapsedSeconds: 25,
    }),
  );
  f.put(report(1, { elapsedSeconds: 3 }));
  await f.backend.pollOnce();

  const job = f.repo.get('j_live')!;
  t.same(job.live, { frame: 1, samplesDone: 250, samplesTotal: 1000, rendering: 2 });
  t.equal(job.progress, 0.125, 'a quarter of one frame of two');
  // Frame 1: 75 s left (100 s in all); frame 2: 100 s less the 3 s it has run.
  t.equal(job.etaSeconds, 97);
  t.ok(
    f.updates.some((u) => u.live?.samplesDone === 250 && u.progress === 0.125),
    'announced in a job.update',
  );

  f.advance(10_000); // no new report: the estimate runs on at the measured rate
  const later = f.repo.get('j_live')!;
  t.equal(later.progress, 0.175, '350 of 1000 samples by now');
  t.equal(later.etaSeconds, 87);
  t.equal(later.live?.samplesDone, 250, 'the samples shown are those reported');

  // A report for a frame that has finished meanwhile is not counted.
  f.put(
    report(0, {
      frame: 1,
      samplesDone: 1000,
      samplesTotal: 1000,
      reportedSeconds: 100,
      secondsPerSample: 0.1,
      elapsedSeconds: 100,
    }),
  );
  f.repo.setFrame('j_live', 1, 'done', { seconds: 100 });
  await f.backend.pollOnce();
  const after = f.repo.get('j_live')!;
  t.same(after.live, { frame: 2, samplesDone: 0, samplesTotal: 0, rendering: 1 });
  t.equal(after.progress, 0.5);
});

t.test('S3 reads stay bounded: one listing per poll, changed reports only, oldest first', async (t) => {
  const f = await following(t);
  const chunks = 100;
  for (let chunk = 0; chunk < chunks; chunk++) f.put(report(chunk, { elapsedSeconds: 1 }));
  const readBy: string[][] = [];
  for (let poll = 0; poll < 4; poll++) {
    const [lists, gets] = [f.lists.length, f.gets.length];
    await f.backend.pollOnce();
    const liveLists = f.lists.slice(lists).filter((prefix) => prefix === keys.livePrefix).length;
    const liveGets = f.gets.slice(gets).filter((key) => key.startsWith(keys.livePrefix));
    t.equal(liveLists, 1, `poll ${poll + 1}: one listing of progress/live/`);
    t.ok(liveGets.length <= MAX_LIVE_READS_PER_POLL, `poll ${poll + 1}: ${liveGets.length} reports read`);
    readBy.push(liveGets);
  }
  t.equal(new Set(readBy.flat()).size, chunks, 'every changed report is read within a few polls');

  // Nothing changed: listed, not read again.
  const gets = f.gets.length;
  await f.backend.pollOnce();
  t.equal(f.gets.slice(gets).filter((key) => key.startsWith(keys.livePrefix)).length, 0);

  // All change again: those read longest ago come first.
  for (let chunk = 0; chunk < chunks; chunk++) f.put(report(chunk, { elapsedSeconds: 2 }));
  const before = f.gets.length;
  await f.backend.pollOnce();
  t.same(
    f.gets.slice(before).filter((key) => key.startsWith(keys.livePrefix)),
    readBy[0]!.slice(0, MAX_LIVE_READS_PER_POLL),
    'the reports first read first are read first again',
  );
});

t.test('no chunk running: the live reports are not listed', async (t) => {
  const f = await following(t, 'RUNNABLE');
  f.put(
    report(0, {
      samplesDone: 5,
      samplesTotal: 10,
      reportedSeconds: 5,
      secondsPerSample: 1,
      elapsedSeconds: 5,
    }),
  );
  await f.backend.pollOnce();
  t.notOk(f.lists.includes(keys.livePrefix), 'progress/live/ not listed');
  t.equal(f.repo.get('j_live')!.live, undefined);
});
