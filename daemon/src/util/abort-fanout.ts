// Many waiters on one AbortSignal (a job's chunks waiting for a render slot, a connection's submits
// waiting for a probe slot, files queued for hashing) share one 'abort' listener on it. A listener
// each piled up on a long-lived signal: Node warns past 10 (MaxListenersExceededWarning: "Possible
// EventTarget memory leak detected"), and every removal scanned them all.

interface Group {
  entries: Set<{ callback: () => void }>;
  fire: () => void;
}

const groups = new WeakMap<AbortSignal, Group>();

/**
 * Calls `callback` once when `signal` aborts (at once when it already has), unless the returned
 * function was called first. However many are registered, the signal holds one listener from here,
 * and none once every registration has been removed or has fired.
 */
export function onAbort(signal: AbortSignal, callback: () => void): () => void {
  if (signal.aborted) {
    callback();
    return () => undefined;
  }
  let group = groups.get(signal);
  if (!group) {
    const entries = new Set<{ callback: () => void }>();
    const fire = () => {
      groups.delete(signal);
      const due = [...entries];
      entries.clear();
      for (const entry of due) entry.callback();
    };
    group = { entries, fire };
    groups.set(signal, group);
    signal.addEventListener('abort', fire, { once: true });
  }
  const entry = { callback };
  const current = group;
  current.entries.add(entry);
  return () => {
    if (!current.entries.delete(entry) || current.entries.size > 0) return;
    if (groups.get(signal) === current) groups.delete(signal);
    signal.removeEventListener('abort', current.fire);
  };
}
