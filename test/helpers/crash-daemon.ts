// Daemons that a test kills and starts again (crash safety): each life is a child process with a
// preload (`node --import`) that SIGKILLs it at the point SKYFARM_TEST_CRASH names, its output
// appended to one log, so the test reads where each life died. Kill points drawn at random come from
// ./seeded-random.ts with crashSeed() (reproduce with SKYFARM_CRASH_SEED=<seed>).
import type { Test } from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import { DaemonClient } from '../../daemon/src/client/daemon-client.js';
import { cliEntry } from './cli.js';

/** The crash seed of this run: SKYFARM_CRASH_SEED, else a random one. */
export const crashSeed = (): number =>
  Number(process.env['SKYFARM_CRASH_SEED'] ?? Math.floor(Math.random() * 2 ** 31));

/** Where a life dies: the `nth` job-log line matching `pattern`, or fs/promises `rename`/`copyFile`
 * to, or fs.createWriteStream opening, a path under one of `dirs`; `delayMs` later (0: at once, a
 * log line then dies unwritten). */
export interface CrashPlan {
  label: string;
  on: 'log' | 'rename' | 'copyFile' | 'createWriteStream';
  pattern?: string;
  dirs?: string[];
  nth: number;
  delayMs: number;
}

/** Preloaded into the daemon: SIGKILLs it at the point SKYFARM_TEST_CRASH (a CrashPlan) names. */
const CRASH_HOOK = String.raw`
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import { syncBuiltinESMExports } from 'node:module';
const plan = process.env.SKYFARM_TEST_CRASH ? JSON.parse(process.env.SKYFARM_TEST_CRASH) : null;
if (plan) {
  let seen = 0;
  let armed = true;
  const die = () => {
    fs.writeSync(2, 'SKYFARM_TEST_CRASH ' + plan.label + '\n');
    process.kill(process.pid, 'SIGKILL');
  };
  const hit = () => {
    if (!armed || ++seen < plan.nth) return;
    armed = false;
    if (plan.delayMs > 0) setTimeout(die, plan.delayMs);
    else die();
  };
  const inDirs = (file) => plan.dirs.some((dir) => String(file).startsWith(dir));
  if (plan.on === 'log') {
    const pattern = new RegExp(plan.pattern);
    const original = fs.appendFileSync;
    fs.appendFileSync = function (file, data, ...rest) {
      const match = typeof file === 'string' && file.endsWith('.log') && pattern.test(String(data));
      if (match && plan.delayMs === 0) hit(); // dies before the line is written
      const result = original.call(this, file, data, ...rest);
      if (match && plan.delayMs > 0) hit();
      return result;
    };
  } else if (plan.on === 'createWriteStream') {
    const original = fs.createWriteStream;
    fs.createWriteStream = function (file, ...rest) {
      const stream = original.call(this, file, ...rest);
      if (inDirs(file)) stream.once('open', hit);
      return stream;
    };
  } else {
    const original = fsp[plan.on];
    fsp[plan.on] = async function (from, to, ...rest) {
      const result = await original.call(this, from, to, ...rest);
      if (inDirs(to)) hit();
      return result;
    };
  }
  syncBuiltinESMExports();
}
`;

export interface DaemonLife {
  child: ChildProcess;
  pid: number;
  exited: Promise<void>;
  /** False when it exited before it announced itself (a plan fired while it resumed). */
  started: boolean;
  /** `exit code …, signal …` once exited, else ''. */
  exit(): string;
}

export interface CrashableDaemons {
  /** The log every life appends its output to. */
  log: string;
  /** Starts a life (a plan, or none) and waits until it wrote daemon.json or exited. */
  start(plan: CrashPlan | null): Promise<DaemonLife>;
  /** Lives not yet exited. */
  running(): ReadonlySet<DaemonLife>;
  connect(): Promise<DaemonClient>;
  /** How much of the log there is (pass to crashedAt). */
  logLength(): number;
  /** The label of the plan that fired in the log after `offset`, if any. */
  crashedAt(offset: number): string | undefined;
  /**
   * One life: starts it with `plan`, runs `during`, waits up to `timeoutMs` for the plan to kill it
   * (SIGKILLs it after that) and says where it died.
   */
  life(plan: CrashPlan, options: { timeoutMs: number; during?: () => Promise<void> }): Promise<string>;
}

/**
 * The real `skyfarm daemon` (built CLI) on state dir `home`, port 0, with AWS unreachable: the `args`
 * and `env` of crashableDaemons for the local backend.
 */
export function localCliDaemon(home: string, extraEnv: NodeJS.ProcessEnv = {}) {
  return {
    args: [cliEntry, 'daemon'],
    env: {
      ...process.env,
      SKYFARM_HOME: home,
      SKYFARM_PORT: '0',
      AWS_ENDPOINT_URL: 'http://127.0.0.1:9',
      AWS_EC2_METADATA_DISABLED: 'true',
      ...extraEnv,
    },
  };
}

/**
 * Runs `node --import <hook> ...args` lives against the state dir `home`, writing the hook and the
 * log into `dir`; every life still running is SIGKILLed at teardown.
 */
export function crashableDaemons(
  t: Test,
  options: { dir: string; home: string; args: string[]; env: NodeJS.ProcessEnv; clientName: string },
): CrashableDaemons {
  const hook = path.join(options.dir, 'crash-hook.mjs');
  writeFileSync(hook, CRASH_HOOK);
  const log = path.join(options.dir, 'daemon.log');
  const live = new Set<DaemonLife>();
  t.teardown(() => {
    for (const daemon of live) daemon.child.kill('SIGKILL');
  });
  const logLength = () => (existsSync(log) ? readFileSync(log, 'utf8').length : 0);
  const crashedAt = (offset: number) =>
    /SKYFARM_TEST_CRASH (.*)/.exec(readFileSync(log, 'utf8').slice(offset))?.[1];

  async function start(plan: CrashPlan | null): Promise<DaemonLife> {
    const fd = openSync(log, 'a');
    const child = spawn(process.execPath, ['--import', pathToFileURL(hook).href, ...options.args], {
      env: { ...options.env, ...(plan ? { SKYFARM_TEST_CRASH: JSON.stringify(plan) } : {}) },
      stdio: ['ignore', fd, fd],
    });
    closeSync(fd);
    let exit = '';
    const exited = new Promise<void>((resolve) =>
      child.once('exit', (code, signal) => {
        exit = `exit code ${code}, signal ${signal}`;
        live.delete(daemon);
        resolve();
      }),
    );
    const daemon: DaemonLife = { child, pid: child.pid!, exited, started: false, exit: () => exit };
    live.add(daemon);
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline && live.has(daemon)) {
      try {
        const info = JSON.parse(readFileSync(path.join(options.home, 'daemon.json'), 'utf8')) as {
          pid: number;
        };
        if (info.pid === daemon.pid) {
          daemon.started = true;
          return daemon;
        }
      } catch {
        // not written yet
      }
      await sleep(50);
    }
    if (!live.has(daemon)) return daemon;
    throw new Error(`the daemon did not start: ${readFileSync(log, 'utf8').slice(-2000)}`);
  }

  return {
    log,
    start,
    running: () => live,
    connect: () =>
      DaemonClient.connect({
        stateDir: options.home,
        clientName: options.clientName,
        clientVersion: '1',
        timeoutMs: 10_000,
      }),
    logLength,
    crashedAt,
    async life(plan, { timeoutMs, during }) {
      const before = logLength();
      const daemon = await start(plan);
      await during?.();
      const fired = await Promise.race([
        daemon.exited.then(() => true),
        sleep(timeoutMs, false, { ref: false }),
      ]);
      if (!fired) {
        daemon.child.kill('SIGKILL');
        await daemon.exited;
      }
      return crashedAt(before) ?? `after ${timeoutMs / 1000} s (planned: ${plan.label})`;
    },
  };
}

/**
 * Blender processes working in `dir`: their command line names it, or, for a Blender started ahead
 * of its chunk (render/warm-blender.ts, no file on its command line), their environment does (the
 * daemon's SKYFARM_HOME).
 */
export function blenderProcessesIn(dir: string): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      if (!/blender/i.test(cmdline.split('\0')[0] ?? '')) continue;
      if (cmdline.includes(dir) || readFileSync(`/proc/${entry}/environ`, 'utf8').includes(dir))
        found.push(Number(entry));
    } catch {
      // gone
    }
  }
  return found;
}

/** Cancels job `jobId`: `answered: <state>`, or `no answer: <code>` when the daemon died first. */
export function cancelAnswer(client: DaemonClient, jobId: string): Promise<string> {
  return client.request('jobs.cancel', { jobId }).then(
    (r) => `answered: ${r.job.state}`,
    (error: unknown) => `no answer: ${(error as { code?: string }).code ?? String(error)}`,
  );
}
