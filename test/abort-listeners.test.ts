// A long run adds no abort listeners: 10,000 waiters on one signal — a job's chunks queued for a
// render slot, files queued for hashing, transfers backing off between retries — hold one listener
// on it at most, and none once they are done. A listener each is what made Node print
// "MaxListenersExceededWarning: Possible EventTarget memory leak detected. 11 abort listeners added
// to [AbortSignal]" during a 12-frame local render with chunk size 1 (issue #15).
import t, { type Test } from 'tap';
import { getEventListeners } from 'node:events';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { Semaphore } from '../daemon/src/util/semaphore.js';
import { HashPool } from '../daemon/src/project/hash-pool.js';
import { withRetries } from '../daemon/src/store/retry.js';

const RUN = 10_000;
const listeners = (signal: AbortSignal) => getEventListeners(signal, 'abort').length;

/** Node's warnings while `t` runs (a MaxListenersExceededWarning among them is the leak). */
function collectWarnings(t: Test): Error[] {
  const warnings: Error[] = [];
  const collect = (warning: Error) => warnings.push(warning);
  process.on('warning', collect);
  t.teardown(() => void process.off('warning', collect));
  return warnings;
}

t.test('10,000 chunks of one job waiting for a render slot hold one listener', async (t) => {
  const warnings = collectWarnings(t);
  const slots = new Semaphore(1);
  const job = new AbortController();
  let rendered = 0;
  let most = 0;
  const chunks = Array.from({ length: RUN }, async () => {
    const release = await slots.acquire(job.signal);
    most = Math.max(most, listeners(job.signal));
    rendered += 1;
    await nextTurn();
    release();
  });
  t.equal(listeners(job.signal), 1, `${RUN - 1} waiting chunks share one listener on the job's signal`);
  await Promise.all(chunks);
  t.equal(rendered, RUN, 'every chunk got the slot in turn');
  t.ok(most <= 1, `never more than one listener while they ran (most: ${most})`);
  t.equal(listeners(job.signal), 0, 'none left afterwards');

  // Canceling the job still stops every waiting chunk.
  const held = await slots.acquire(job.signal);
  const waiting = Array.from({ length: 100 }, () => slots.acquire(job.signal));
  job.abort(new Error('job canceled'));
  const outcomes = await Promise.allSettled(waiting);
  t.ok(
    outcomes.every((o) => o.status === 'rejected' && (o.reason as Error).message === 'job canceled'),
    'a cancel rejects every waiting chunk with its reason',
  );
  held();
  t.equal(listeners(job.signal), 0, 'and leaves no listener');
  const next = await slots.acquire();
  next();
  t.same(
    warnings.map((w) => w.name),
    [],
    'Node printed no warning',
  );
});

t.test('10,000 files queued for hashing under one signal hold one listener', async (t) => {
  const warnings = collectWarnings(t);
  const dir = t.testdir({});
  const file = join(dir, 'small.bin');
  await writeFile(file, 'skyfarm');
  const pool = new HashPool(2);
  t.teardown(() => pool.close());
  const upload = new AbortController();
  const hashes = Array.from({ length: RUN }, () => pool.hash(file, { signal: upload.signal }));
  t.ok(listeners(upload.signal) <= 1, `${RUN} queued files share one listener (${listeners(upload.signal)})`);
  const results = await Promise.all(hashes);
  t.equal(new Set(results.map((r) => r.sha256)).size, 1, 'every file hashed');
  t.equal(listeners(upload.signal), 0, 'none left afterwards');

  const canceled = Array.from({ length: 1000 }, () => pool.hash(file, { signal: upload.signal }));
  upload.abort(new Error('upload canceled'));
  const outcomes = await Promise.allSettled(canceled);
  t.ok(
    outcomes.some((o) => o.status === 'rejected' && (o.reason as Error).message === 'upload canceled'),
    'a cancel stops the queued files',
  );
  t.equal(listeners(upload.signal), 0, 'and leaves no listener');
  t.same(
    warnings.map((w) => w.name),
    [],
    'Node printed no warning',
  );
});

t.test('10,000 transfers backing off under one signal hold one listener', async (t) => {
  const warnings = collectWarnings(t);
  const upload = new AbortController();
  const reset = () => Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
  const transfers = Array.from({ length: RUN }, (_, i) =>
    withRetries(
      async (attempt) => {
        if (attempt === 1) throw reset();
        return i;
      },
      { signal: upload.signal, baseDelayMs: 20 },
    ),
  );
  await nextTurn(); // every first attempt has failed: they are backing off now
  const backingOff = listeners(upload.signal);
  const results = await Promise.all(transfers);
  t.equal(results.length, RUN, 'every transfer succeeded on its second attempt');
  t.ok(backingOff <= 1, `their back-offs share one listener (${backingOff})`);
  t.equal(listeners(upload.signal), 0, 'none left afterwards');

  // A cancel during the back-off ends every waiting transfer at once, with the cancel's reason.
  const waiting = Array.from({ length: 100 }, () =>
    withRetries(
      async () => {
        throw reset();
      },
      { signal: upload.signal, baseDelayMs: 60_000 },
    ),
  );
  await nextTurn();
  upload.abort(new Error('upload canceled'));
  const outcomes = await Promise.allSettled(waiting);
  t.ok(
    outcomes.every((o) => o.status === 'rejected' && (o.reason as Error).message === 'upload canceled'),
    'a cancel ends every back-off with its reason',
  );
  t.equal(listeners(upload.signal), 0, 'and leaves no listener');
  t.same(
    warnings.map((w) => w.name),
    [],
    'Node printed no warning',
  );
});
