// A Blender started while a local job is still being probed and uploaded, so the render does not
// wait for Blender to start (about 1.3 s of CPU: Python, add-ons, Cycles). It runs render_chunk.py in
// `@stdin` mode: started without a file, it waits for one line with the chunk's arguments and the
// .blend to open. One is kept at a time, for one Blender executable; unused, it is stopped after
// `idleMs`. If the daemon dies, Blender reads end-of-file and exits by itself.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { blenderScript, knownBlenderVersion, renderLogArgs, type BlenderVersion } from './blender.js';

/**
 * The command line of a Blender that waits for its chunk on stdin. `mark` (unused by the script)
 * names this Blender in its command line, as a cold one is named by its .blend's path: a restarted
 * daemon checks it before killing a recorded pid (pids get reused). `version`: Blender's (its log
 * flags, as for a cold render).
 */
export function warmRenderArgs(mark: string, version?: BlenderVersion): string[] {
  return [
    '-b',
    ...renderLogArgs(version),
    '--python-exit-code',
    '1',
    '--python',
    blenderScript('render_chunk.py'),
    '--',
    '@stdin',
    mark,
  ];
}

export interface TakenBlender {
  child: ChildProcess;
  mark: string;
}

interface Warm extends TakenBlender {
  blender: string;
  idleTimer: NodeJS.Timeout;
}

export class WarmBlender {
  private warm: Warm | undefined;
  /** How many were started and how many were used (what the tests check). */
  readonly stats = { started: 0, taken: 0 };

  constructor(private readonly options: { idleMs?: number; env?: () => NodeJS.ProcessEnv } = {}) {}

  /** The pid of the Blender waiting for a chunk, if one is. */
  get readyPid(): number | undefined {
    const current = this.warm;
    return current && isRunning(current.child) ? current.child.pid : undefined;
  }

  /** Starts one for `blender` unless one is ready. Never throws: a failed start just means a cold render. */
  prepare(blender: string): void {
    const current = this.warm;
    if (current && current.blender === blender && isRunning(current.child)) {
      current.idleTimer.refresh();
      return;
    }
    this.discard();
    const mark = `skyfarm-warm-${randomBytes(8).toString('hex')}`;
    let child: ChildProcess;
    try {
      child = spawn(blender, warmRenderArgs(mark, knownBlenderVersion(blender)), {
        env: this.options.env?.() ?? process.env,
        detached: true,
        stdio: ['pipe', 'pipe', 'pipe'],
      });
    } catch {
      return;
    }
    // Output is read by whoever takes it; until then the pipe holds Blender's few start-up lines.
    child.stdin?.on('error', () => undefined); // EPIPE: it died; the render then fails like a cold one
    const forget = () => {
      if (this.warm?.child === child) {
        clearTimeout(this.warm.idleTimer);
        this.warm = undefined;
      }
    };
    child.once('error', forget);
    child.once('exit', forget);
    const idleTimer = setTimeout(() => this.discard(), this.options.idleMs ?? 30_000);
    idleTimer.unref();
    this.warm = { blender, child, mark, idleTimer };
    this.stats.started++;
  }

  /** The ready Blender for `blender`, now the caller's (it writes the chunk line and reads the output). */
  take(blender: string): TakenBlender | undefined {
    const current = this.warm;
    if (!current || current.blender !== blender || !isRunning(current.child)) return undefined;
    clearTimeout(current.idleTimer);
    this.warm = undefined;
    this.stats.taken++;
    return { child: current.child, mark: current.mark };
  }

  /** Stops the unused one (daemon shutdown, a failed submit, idle). */
  discard(): void {
    const current = this.warm;
    if (!current) return;
    clearTimeout(current.idleTimer);
    this.warm = undefined;
    current.child.stdin?.end(); // it exits on end-of-file; the kill is for one still starting up
    if (current.child.pid !== undefined && isRunning(current.child)) {
      try {
        process.kill(-current.child.pid, 'SIGTERM');
      } catch {
        // already gone
      }
    }
  }
}

function isRunning(child: ChildProcess): boolean {
  return child.pid !== undefined && child.exitCode === null && child.signalCode === null;
}
