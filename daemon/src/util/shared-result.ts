// One result for many callers: concurrent calls share one run of `fn`, and a success is reused for
// `ttlMs`. A failure is shared by the callers waiting on it but not remembered.
export function sharedResult<T>(
  fn: () => Promise<T>,
  ttlMs: number,
  now: () => number = Date.now,
): () => Promise<T> {
  let inflight: Promise<T> | undefined;
  let cached: { value: T; until: number } | undefined;
  return () => {
    if (cached && now() < cached.until) return Promise.resolve(cached.value);
    inflight ??= fn()
      .then((value) => {
        cached = { value, until: now() + ttlMs };
        return value;
      })
      .finally(() => {
        inflight = undefined;
      });
    return inflight;
  };
}
