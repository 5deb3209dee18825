// Bounds how many Blender processes run at once across all jobs (Blender already uses every core).
import { onAbort as whenAborted } from './abort-fanout.js';
import { Fifo } from './fifo.js';

export class Semaphore {
  private readonly waiting = new Fifo<() => void>();
  private active = 0;
  constructor(private readonly limit: number) {}

  async acquire(signal?: AbortSignal): Promise<() => void> {
    signal?.throwIfAborted();
    if (this.active < this.limit) {
      this.active += 1;
      return this.releaser();
    }
    await new Promise<void>((resolve, reject) => {
      // Every waiter with this signal shares one listener on it (a job may queue many chunks).
      const stopWatching = signal
        ? whenAborted(signal, () => {
            this.waiting.remove(grant);
            reject(signal.reason);
          })
        : () => undefined;
      const grant = () => {
        stopWatching();
        resolve();
      };
      this.waiting.push(grant);
    });
    this.active += 1;
    return this.releaser();
  }

  private releaser(): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.active -= 1;
      this.waiting.shift()?.();
    };
  }
}
