// The worker's live progress writer (infra/worker/render.ts LiveReporter): a frame's first samples
// are written at once, later changes at most once per interval with the newest state, one write at a
// time; a failed write is logged once and tried again; after stop() nothing more is written.
import t from 'tap';
import { LiveReporter } from '../infra/worker/render.js';
import { until } from './helpers/until.js';

function reporter(intervalMs: number, fail = 0) {
  let state = 0;
  const written: number[] = [];
  const logged: string[] = [];
  let failures = fail;
  let release: (() => void) | undefined;
  let hold = false;
  const live = new LiveReporter(
    async () => {
      const value = state; // taken when the write starts, as the worker's report is
      if (hold) await new Promise<void>((resolve) => (release = resolve));
      if (failures > 0) {
        failures--;
        throw new Error('S3 said no');
      }
      written.push(value);
    },
    (line) => logged.push(line),
    intervalMs,
  );
  return {
    live,
    written,
    logged,
    set: (value: number) => (state = value),
    hold: (on: boolean) => {
      hold = on;
      if (!on) release?.();
    },
  };
}

t.test('first samples at once, then at most once per interval, the newest state', async (t) => {
  const r = reporter(3_600_000);
  r.set(1);
  r.live.changed(true);
  await until('the first write', () => r.written.length === 1);
  for (const value of [2, 3, 4]) {
    r.set(value);
    r.live.changed(false);
  }
  await new Promise((resolve) => setImmediate(resolve));
  t.same(r.written, [1], 'later changes wait for the interval');
  r.set(5);
  r.live.changed(true);
  await until('the urgent write', () => r.written.length === 2);
  t.same(r.written, [1, 5], 'a frame’s first samples do not wait: the newest state goes');
  await r.live.stop();
  r.live.changed(true);
  await new Promise((resolve) => setImmediate(resolve));
  t.same(r.written, [1, 5], 'nothing after stop()');
});

t.test('one write at a time: changes during a write go in one write after it', async (t) => {
  const r = reporter(0);
  r.hold(true);
  r.set(1);
  r.live.changed(true);
  for (const value of [2, 3]) {
    r.set(value);
    r.live.changed(true);
  }
  r.hold(false);
  await until('the second write', () => r.written.length === 2);
  await r.live.stop();
  t.same(r.written, [1, 3], 'the write in flight, then one more with the newest state (not one per change)');
});

t.test('a failed write is logged once and tried again', async (t) => {
  const r = reporter(5, 2);
  r.set(7);
  r.live.changed(true);
  await until('the write after two failures', () => r.written.length === 1);
  await r.live.stop();
  t.same(r.written, [7]);
  t.equal(r.logged.length, 1, 'two failures in a row, one log line');
  t.match(r.logged[0], /live progress upload failed \(retrying\): S3 said no/);
});
