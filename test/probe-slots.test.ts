// Many submissions at once inspect their scenes a few at a time, not all at once (each inspection
// is a Blender process), and a submission canceled while waiting for a slot starts no Blender.
import t from 'tap';
import type { ProbeResult } from '../daemon/src/render/blender.js';
import { withProbeSlots } from '../daemon/src/render/probe-slots.js';

function countingProbe() {
  const state = { running: 0, most: 0, started: [] as string[], finish: [] as Array<() => void> };
  const probe = async (_blender: string, file: string): Promise<ProbeResult> => {
    state.running++;
    state.most = Math.max(state.most, state.running);
    state.started.push(file);
    await new Promise<void>((resolve) => state.finish.push(resolve));
    state.running--;
    return { file } as unknown as ProbeResult;
  };
  return { state, probe };
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

t.test('twenty probes at once run two at a time and all complete', async (t) => {
  const { state, probe } = countingProbe();
  const bounded = withProbeSlots(probe, 2);
  const results = Array.from({ length: 20 }, (_, i) => bounded('blender', `scene${i}.blend`));
  await tick();
  t.equal(state.running, 2, 'only two Blenders inspect scenes at first');
  while (state.finish.length > 0) {
    state.finish.shift()?.();
    await tick();
    await tick();
  }
  const done = (await Promise.all(results)) as unknown as Array<{ file: string }>;
  t.equal(state.most, 2, 'never more than two at once');
  t.same(
    done.map((r) => r.file),
    Array.from({ length: 20 }, (_, i) => `scene${i}.blend`),
    'each submission gets its own scene back',
  );
  t.same(
    state.started,
    done.map((r) => r.file),
    'first come, first served',
  );
});

t.test('a submission aborted while waiting starts no Blender', async (t) => {
  const { state, probe } = countingProbe();
  const bounded = withProbeSlots(probe, 1);
  const first = bounded('blender', 'first.blend');
  const controller = new AbortController();
  const waiting = bounded('blender', 'second.blend', undefined, { signal: controller.signal });
  await tick();
  controller.abort(new Error('client went away'));
  await t.rejects(waiting, /client went away/, 'the waiting probe is rejected');
  state.finish.shift()?.();
  await first;
  t.same(state.started, ['first.blend'], 'the aborted one never ran');
  const third = bounded('blender', 'third.blend');
  await tick();
  t.equal(state.running, 1, 'the slot was handed on');
  state.finish.shift()?.();
  await third;
});
