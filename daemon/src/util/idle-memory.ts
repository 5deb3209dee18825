// Gives memory back once the daemon is idle. Under Node.js 22/24, V8 keeps the heap a big upload grew
// to, and the pages of the hash workers it stopped, in its page pool: the memory reducer that would
// release them waits for a low allocation rate and keeps judging the daemon "high alloc, foreground"
// (--trace-memory-reducer), so an idle daemon stayed at 170-210 MiB RSS after a 10,000-file upload.
// V8's --optimize-for-size makes it reduce as it would in the background: set once the daemon has
// served no request and run no upload for `idleMs`, cleared when the next one starts (it slows
// JavaScript: an unchanged 10,000-file re-submit took 2x as long with it on throughout). Measured
// with the bench's daemon_idle_rss_mb: 181 → 110 MiB. V8 flags set at run time are outside Node.js'
// guarantees, so SKYFARM_IDLE_MEMORY=0 turns this off.

export interface IdleMemoryOptions {
  idleMs: number;
  /** v8.setFlagsFromString in the daemon; tests pass a recorder. */
  setFlags: (flags: string) => void;
  setTimer?: (fn: () => void, ms: number) => object;
  clearTimer?: (timer: unknown) => void;
}

export class IdleMemory {
  private busy = 0;
  private saving = false;
  private timer: unknown;
  private closed = false;

  constructor(private readonly options: IdleMemoryOptions) {
    this.arm();
  }

  /** Marks a request or an upload as started; the returned function marks it done. */
  begin(): () => void {
    this.busy += 1;
    this.disarm();
    if (this.saving) {
      this.saving = false;
      this.options.setFlags('--no-optimize-for-size');
    }
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      this.busy -= 1;
      if (this.busy === 0) this.arm();
    };
  }

  /** Runs `work` as busy time (a job's upload, which goes on after its request has answered). */
  async during<T>(work: () => Promise<T>): Promise<T> {
    const end = this.begin();
    try {
      return await work();
    } finally {
      end();
    }
  }

  /** Whether the daemon is in its idle, memory-saving mode. */
  get savingMemory(): boolean {
    return this.saving;
  }

  close(): void {
    this.closed = true;
    this.disarm();
  }

  private arm(): void {
    if (this.closed) return;
    this.disarm();
    const setTimer = this.options.setTimer ?? ((fn, ms) => setTimeout(fn, ms));
    const timer = setTimer(() => {
      this.timer = undefined;
      if (this.busy > 0 || this.saving || this.closed) return;
      this.saving = true;
      this.options.setFlags('--optimize-for-size');
    }, this.options.idleMs);
    (timer as { unref?: () => unknown }).unref?.();
    this.timer = timer;
  }

  private disarm(): void {
    if (this.timer === undefined) return;
    (this.options.clearTimer ?? ((t) => clearTimeout(t as NodeJS.Timeout)))(this.timer);
    this.timer = undefined;
  }
}
