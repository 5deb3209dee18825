// The daemon gives memory back once idle (daemon/src/util/idle-memory.ts): after `idleMs` without a
// request it asks V8 to optimize for size, and the next request turns that off before it runs, so
// uploads and re-submits run at full speed. Requests are counted through the registry, whatever
// their transport; a request that fails ends like one that succeeds.
import t from 'tap';
import { IdleMemory } from '../daemon/src/util/idle-memory.js';
import { RpcRegistry } from '../daemon/src/rpc/registry.js';

/** Timers the test fires by hand. */
function manualTimers() {
  const pending = new Set<{ fn: () => void; ms: number }>();
  return {
    setTimer: (fn: () => void, ms: number) => {
      const timer = { fn, ms };
      pending.add(timer);
      return timer;
    },
    clearTimer: (timer: unknown) => pending.delete(timer as { fn: () => void; ms: number }),
    fireAll: () => {
      const due = [...pending];
      pending.clear();
      for (const timer of due) timer.fn();
    },
    get count() {
      return pending.size;
    },
  };
}

/** An IdleMemory on manual timers, recording the V8 flags it sets. */
function idleWithManualTimers() {
  const timers = manualTimers();
  const flags: string[] = [];
  const idle = new IdleMemory({
    idleMs: 10_000,
    setFlags: (f) => flags.push(f),
    setTimer: timers.setTimer,
    clearTimer: timers.clearTimer,
  });
  return { idle, timers, flags };
}

t.test('memory saving follows requests', async (t) => {
  const { idle, timers, flags } = idleWithManualTimers();
  t.equal(timers.count, 1, 'a fresh daemon waits for its first idle period');
  timers.fireAll();
  t.same(flags, ['--optimize-for-size'], 'idle: V8 optimizes for size');
  t.ok(idle.savingMemory);

  const end = idle.begin();
  t.same(flags, ['--optimize-for-size', '--no-optimize-for-size'], 'a request turns it off before it runs');
  t.equal(timers.count, 0, 'no idle timer while a request runs');
  const second = idle.begin();
  end();
  t.equal(timers.count, 0, 'still one request running');
  second();
  second();
  t.equal(timers.count, 1, 'the last request ended (once, however often it says so): idle timer armed');
  const third = idle.begin();
  t.equal(timers.count, 0, 'a request before the timer fires cancels it');
  third();
  timers.fireAll();
  t.same(flags.at(-1), '--optimize-for-size', 'idle again');
  t.equal(flags.length, 3);
  idle.close();
  t.equal(timers.count, 0, 'closed: no timer left');
});

t.test('an upload after its request has answered is busy time too', async (t) => {
  const { idle, timers } = idleWithManualTimers();
  timers.fireAll();
  let finish: (value: string) => void = () => {};
  const upload = idle.during(() => new Promise<string>((resolve) => (finish = resolve)));
  t.notOk(idle.savingMemory, 'the upload runs at full speed');
  t.equal(timers.count, 0, 'no idle timer while it runs');
  finish('uploaded');
  t.equal(await upload, 'uploaded', 'its result comes through');
  t.equal(timers.count, 1, 'idle timer armed once it is done');
  await t.rejects(
    idle.during(() => Promise.reject(new Error('upload failed'))),
    /upload failed/,
  );
  t.equal(timers.count, 1, 'a failed upload ends its busy time too');
  idle.close();
});

t.test('the registry reports every request, failed ones too', async (t) => {
  const events: string[] = [];
  const registry = new RpcRegistry({
    begin: () => {
      events.push('begin');
      return () => events.push('end');
    },
  });
  registry.register('daemon.info', () => {
    events.push('run');
    return { version: '1', pid: 1, backends: { local: { available: true }, aws: { available: false } } };
  });
  registry.register('jobs.get', () => {
    events.push('run');
    throw new Error('no such job');
  });
  const context = { notify: () => {}, signal: new AbortController().signal };
  await registry.get('daemon.info')!({}, context);
  await t.rejects(Promise.resolve(registry.get('jobs.get')!({ id: 'x' } as never, context)), /no such job/);
  t.same(events, ['begin', 'run', 'end', 'begin', 'run', 'end']);
  t.equal(registry.get('jobs.list'), undefined, 'an unregistered method is still unknown');
});
