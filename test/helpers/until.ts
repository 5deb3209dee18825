// Polls a condition in a test until it holds (every `intervalMs`), failing after `timeoutMs`.
import { setTimeout as sleep } from 'node:timers/promises';

export async function until(
  what: string,
  check: () => boolean,
  timeoutMs = 20_000,
  intervalMs = 5,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(intervalMs);
  }
}
