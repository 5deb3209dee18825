// Crash safety of the local backend: the daemon (a real `skyfarm daemon` process) is killed with
// SIGKILL at seeded random points across three local jobs — during upload, copy, rendering, while a
// frame is being published into the output folder, while the job is published — and started again
// each time. Every job must finish exactly once with every frame, no frame may be rendered twice
// (Blender's SKYFARM_FRAME_DONE markers in the job log), a frame's final name never holds a partial
// image (checked after every kill), and no temporary file is left in an output folder at the end (a
// copy across file systems cut short by a kill leaves a hidden `.NAME.xxxxxxxx.part` until the
// daemon restarts).
//
// The kill points come from a preload (`node --import`) that wraps fs.appendFileSync (job log
// lines), fs/promises rename (a blob landing in the store, a frame landing in the output folder) and
// copyFile (a frame copied across file systems), and SIGKILLs the process at the chosen occurrence,
// optionally after a random delay; other kills come from the test after a random time.
//
// Reproduce a failure with the seed it prints: SKYFARM_CRASH_SEED=<seed> npx tap test/reliability-crash.test.ts
import t from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import {
  closeSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import { blenderSkip, makeScene, readPng } from './helpers/scenes.js';
import { cliEntry } from './helpers/cli.js';
import { DaemonClient } from '../daemon/src/client/daemon-client.js';
import type { Job } from '../protocol/generated/protocol.js';

const SEED = Number(process.env['SKYFARM_CRASH_SEED'] ?? Math.floor(Math.random() * 2 ** 31));
const KILLS = Number(process.env['SKYFARM_CRASH_KILLS'] ?? 12);
const FRAMES = [1, 2, 3];
const FINISHED = ['done', 'failed', 'canceled'];

function rng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = a;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
  return {
    int: (lo: number, hi: number) => lo + Math.floor(next() * (hi - lo + 1)),
    pick: <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)]!,
    shuffle: <T>(items: T[]): T[] => {
      for (let i = items.length - 1; i > 0; i--) {
        const j = Math.floor(next() * (i + 1));
        [items[i], items[j]] = [items[j]!, items[i]!];
      }
      return items;
    },
  };
}

/** Preloaded into the daemon: SIGKILLs it at the point SKYFARM_TEST_CRASH names. */
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
  } else {
    const original = fsp[plan.on];
    fsp[plan.on] = async function (from, to, ...rest) {
      const result = await original.call(this, from, to, ...rest);
      if (plan.dirs.some((dir) => String(to).startsWith(dir))) hit();
      return result;
    };
  }
  syncBuiltinESMExports();
}
`;

interface CrashPlan {
  label: string;
  on: 'log' | 'rename' | 'copyFile' | 'timer';
  pattern?: string;
  dirs?: string[];
  nth: number;
  delayMs: number;
}

interface Daemon {
  child: ChildProcess;
  pid: number;
  exited: Promise<void>;
}

t.test('SIGKILL at random points: every local job finishes once, whole', { skip: blenderSkip }, async (t) => {
  t.comment(`crash seed ${SEED}, ${KILLS} kills (rerun with SKYFARM_CRASH_SEED=${SEED})`);
  const r = rng(SEED);
  const dir = t.testdir({});
  const home = join(dir, 'home');
  const hook = join(dir, 'crash-hook.mjs');
  writeFileSync(hook, CRASH_HOOK);
  const daemonLog = join(dir, 'daemon.log');

  // Even jobs publish into this test's folder (same file system as the state dir: frames are renamed
  // into place), odd ones into /dev/shm when that is another file system (frames are copied under a
  // temporary name, then renamed).
  let otherFs: string | undefined;
  if (existsSync('/dev/shm') && statSync('/dev/shm').dev !== statSync(dir).dev) {
    otherFs = mkdtempSync('/dev/shm/skyfarm-crash-');
    t.teardown(() => rmSync(otherFs!, { recursive: true, force: true }));
  }
  t.comment(otherFs ? `cross-device outputs in ${otherFs}` : 'no second file system: all outputs local');

  // One real scene with an external texture; each job gets its own copy whose texture carries 6 MB of
  // distinct trailing bytes, so every upload stores new blobs and takes a moment.
  const base = join(dir, 'base');
  await makeScene(base, {
    frames: [1, 3],
    samples: 8,
    outputPath: '//out/f_####',
    textures: [{ path: 'tex/big.png' }],
  });
  const jobs: Array<{ blend: string; output: string; id?: string }> = [];
  for (let i = 0; i < 5; i++) {
    const project = join(dir, `project${i}`);
    mkdirSync(join(project, 'tex'), { recursive: true });
    copyFileSync(join(base, 'scene.blend'), join(project, 'scene.blend'));
    writeFileSync(
      join(project, 'tex', 'big.png'),
      Buffer.concat([readFileSync(join(base, 'tex', 'big.png')), randomBytes(6 * 1024 * 1024)]),
    );
    const output = otherFs && i % 2 === 1 ? join(otherFs, `out${i}`) : join(project, 'out');
    jobs.push({ blend: join(project, 'scene.blend'), output });
  }
  const outputDirs = jobs.map((job) => job.output);
  const storeDir = join(home, 'store', 'cas');

  const baseEnv: NodeJS.ProcessEnv = {
    ...process.env,
    SKYFARM_HOME: home,
    SKYFARM_PORT: '0',
    SKYFARM_LOG_LEVEL: 'info',
    AWS_ENDPOINT_URL: 'http://127.0.0.1:9',
    AWS_EC2_METADATA_DISABLED: 'true',
  };
  const live = new Set<Daemon>();
  t.teardown(async () => {
    for (const daemon of live) daemon.child.kill('SIGKILL');
    killLeftoverBlender(home);
  });

  async function startDaemon(plan: CrashPlan | null): Promise<Daemon> {
    const logFd = openSync(daemonLog, 'a');
    const env = { ...baseEnv };
    if (plan && plan.on !== 'timer') env['SKYFARM_TEST_CRASH'] = JSON.stringify(plan);
    const child = spawn(process.execPath, ['--import', pathToFileURL(hook).href, cliEntry, 'daemon'], {
      env,
      stdio: ['ignore', logFd, logFd],
    });
    closeSync(logFd);
    let exit = '';
    const exited = new Promise<void>((resolve) =>
      child.once('exit', (code, signal) => {
        exit = `exit code ${code}, signal ${signal}`;
        resolve();
      }),
    );
    const daemon: Daemon = { child, pid: child.pid!, exited };
    live.add(daemon);
    void exited.then(() => live.delete(daemon));
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      try {
        const info = JSON.parse(readFileSync(join(home, 'daemon.json'), 'utf8')) as { pid: number };
        if (info.pid === daemon.pid) return daemon;
      } catch {
        // not written yet
      }
      if (!live.has(daemon)) break;
      await sleep(50);
    }
    throw new Error(
      `the daemon did not start (${exit || 'still running'}): ${readFileSync(daemonLog, 'utf8').slice(-2000)}`,
    );
  }

  async function connect(): Promise<DaemonClient> {
    return DaemonClient.connect({
      stateDir: home,
      clientName: 'crash-test',
      clientVersion: '1',
      timeoutMs: 10_000,
    });
  }

  /**
   * Submits job `index` unless it exists already. A daemon killed during a submit may or may not have
   * created the job: like a real client, the test looks it up by name after the restart and submits
   * it again only when it is not there.
   */
  async function submit(client: DaemonClient, index: number): Promise<void> {
    const job = jobs[index]!;
    const name = `crash job ${index}`;
    const existing = (await client.request('jobs.list', {})).jobs.find(
      (candidate) => candidate.name === name,
    );
    if (existing) {
      job.id = existing.id;
      return;
    }
    try {
      const result = await client.request('render.submit', {
        blendFile: job.blend,
        frames: '1-3',
        chunkSize: 2,
        output: job.output,
        name,
      });
      job.id = result.job.id;
    } catch (error) {
      if ((error as { code?: string }).code !== 'DAEMON_UNREACHABLE') throw error;
      t.comment(`the daemon died while job ${index} was submitted`);
    }
  }

  /** Output folders hold only whole frames under their final names (plus, after a kill, our temporaries). */
  const partials: string[] = [];
  let temporariesSeen = 0;
  async function checkOutputs(when: string, allowTemporaries: boolean): Promise<void> {
    for (const output of outputDirs) {
      if (!existsSync(output)) continue;
      for (const name of readdirSync(output)) {
        if (allowTemporaries && /^\.f_000[1-3]\.png\.[0-9a-f]{8}\.part$/.test(name)) {
          temporariesSeen++;
          continue;
        }
        if (!/^f_000[1-3]\.png$/.test(name)) {
          partials.push(`${when}: ${name} in ${output}`);
          continue;
        }
        try {
          await readPng(join(output, name));
        } catch (error) {
          partials.push(`${when}: ${(error as Error).message}`);
        }
      }
    }
  }

  // The kill points. Uploads are killed in lives that submit a job; the two windows of moving a frame
  // into the output come first after that, while every job still has frames to render; the rest in a
  // seeded order. A point that cannot come in a life (no unfinished job left) is tried again later.
  const sameFsDirs = jobs
    .filter((job) => !otherFs || !job.output.startsWith(otherFs))
    .map((j) => j.output + '/');
  const otherFsDirs = jobs
    .filter((job) => otherFs && job.output.startsWith(otherFs))
    .map((j) => j.output + '/');
  const uploads: CrashPlan[] = r.shuffle([
    { label: 'upload: first blob stored', on: 'rename', dirs: [storeDir], nth: 1, delayMs: 0 },
    { label: 'upload started', on: 'log', pattern: 'collecting the scene', nth: 1, delayMs: r.int(0, 80) },
  ]);
  const moved: CrashPlan = {
    label: 'frame moved into the output, not yet recorded',
    on: 'rename',
    dirs: sameFsDirs,
    nth: 1,
    delayMs: 0,
  };
  const moves: CrashPlan[] = r.shuffle([
    moved,
    otherFs
      ? {
          label: 'frame copied across file systems, not yet renamed',
          on: 'copyFile',
          dirs: otherFsDirs,
          nth: 1,
          delayMs: 0,
        }
      : { ...moved, nth: 2 },
  ]);
  const rest: CrashPlan[] = r.shuffle([
    {
      label: 'copy stage',
      on: 'log',
      pattern: 'preparing the working folder',
      nth: 1,
      delayMs: r.int(0, 40),
    },
    {
      label: 'mid-render',
      on: 'log',
      pattern: '^SKYFARM_FRAME_START',
      nth: r.int(1, 2),
      delayMs: r.int(50, 1500),
    },
    {
      label: 'frame rendered, not yet published',
      on: 'log',
      pattern: '^SKYFARM_FRAME_DONE',
      nth: r.int(1, 2),
      delayMs: 0,
    },
    { label: 'publish stage started', on: 'log', pattern: 'publishing frames', nth: 1, delayMs: 0 },
    {
      label: 'published, not yet recorded done',
      on: 'log',
      pattern: '^\\[skyfarm\\] done:',
      nth: 1,
      delayMs: 0,
    },
    { label: 'after a random time', on: 'timer', nth: 1, delayMs: r.int(500, 5000) },
  ]);
  const bag: CrashPlan[] = [...moves, ...rest];

  const landed: string[] = [];
  const submitted = new Set<number>();
  let nextJob = 0;
  let idle = true; // nothing unfinished: the next life submits a job
  for (let life = 0; life < KILLS; life++) {
    // Submit in the first life (two jobs), in the middle, and whenever all work is done; plus any
    // submission an earlier kill cut short.
    const fresh: number[] = [];
    if (life === 0) fresh.push(nextJob++, nextJob++);
    else if ((idle || life === Math.floor(KILLS / 2)) && nextJob < jobs.length) fresh.push(nextJob++);
    const plan =
      (fresh.length > 0 ? uploads.shift() : undefined) ?? bag.shift() ?? r.pick([...rest, ...moves]);
    const logBefore = existsSync(daemonLog) ? readFileSync(daemonLog, 'utf8').length : 0;
    const daemon = await startDaemon(plan);
    const toSubmit = [...fresh, ...[...submitted].filter((index) => jobs[index]!.id === undefined)];
    let client: DaemonClient | undefined;
    try {
      client = await connect();
      for (const index of toSubmit) {
        submitted.add(index);
        await submit(client, index);
      }
    } catch (error) {
      if ((error as { code?: string }).code !== 'DAEMON_UNREACHABLE') throw error;
    }
    // The plan fires; or every job has finished before it could (the test kills the daemon and tries
    // the plan again in a later life); or it takes too long (the test kills the daemon).
    const deadline = Date.now() + (plan.on === 'timer' ? plan.delayMs : 45_000);
    let outcome: 'fired' | 'idle' | 'timeout' = 'timeout';
    idle = false;
    while (Date.now() < deadline) {
      if (!live.has(daemon)) {
        outcome = 'fired';
        break;
      }
      try {
        const list = (await client?.request('jobs.list', {}))?.jobs ?? [];
        if (list.length > 0 && list.every((job) => FINISHED.includes(job.state))) {
          outcome = 'idle';
          idle = true;
          break;
        }
      } catch {
        // the daemon is gone: the loop sees it
      }
      await sleep(300);
    }
    client?.close();
    if (live.has(daemon)) {
      process.kill(daemon.pid, 'SIGKILL');
      await daemon.exited;
    }
    const hookLine = /SKYFARM_TEST_CRASH (.*)/.exec(readFileSync(daemonLog, 'utf8').slice(logBefore))?.[1];
    let where: string;
    if (hookLine) where = hookLine;
    else if (plan.on === 'timer') where = plan.label;
    else if (outcome === 'idle') {
      where = `when idle (${plan.label} could not come: tried again later)`;
      (plan.label.startsWith('upload') ? uploads : bag).unshift(plan);
    } else where = `after 45 s (planned: ${plan.label})`;
    landed.push(where);
    t.comment(`kill ${life + 1}: ${where}`);
    await checkOutputs(`after kill ${life + 1} (${where})`, true);
  }

  // A last daemon without a crash plan finishes everything.
  const daemon = await startDaemon(null);
  const client = await connect();
  for (const index of submitted) if (jobs[index]!.id === undefined) await submit(client, index);
  let all: Job[] = [];
  const deadline = Date.now() + 150_000;
  while (Date.now() < deadline) {
    all = (await client.request('jobs.list', {})).jobs;
    if (all.length === submitted.size && all.every((job) => FINISHED.includes(job.state))) break;
    await sleep(500);
  }
  client.close();
  process.kill(daemon.pid, 'SIGTERM');
  await daemon.exited;
  await checkOutputs('at the end', false);

  t.ok(submitted.size >= 3, `${submitted.size} jobs submitted`);
  t.equal(all.length, submitted.size, 'one job per submission, no duplicates');
  for (const index of submitted) {
    const job = jobs[index]!;
    const found = all.find((candidate) => candidate.id === job.id);
    t.match(
      found,
      { state: 'done', framesDone: 3, framesFailed: 0 },
      `job ${index} finished with every frame`,
    );
    t.same(
      existsSync(job.output) ? readdirSync(job.output).sort() : [],
      FRAMES.map((n) => `f_000${n}.png`),
      `job ${index}: exactly its frames in ${job.output}`,
    );
    const log = readFileSync(join(home, 'logs', `${job.id}.log`), 'utf8');
    const renders = new Map<number, number>();
    for (const match of log.matchAll(/^SKYFARM_FRAME_DONE (\d+) /gm)) {
      renders.set(Number(match[1]), (renders.get(Number(match[1])) ?? 0) + 1);
    }
    const twice = [...renders].filter(([, count]) => count > 1).map(([frame]) => frame);
    t.same(
      twice,
      [],
      `job ${index}: no frame rendered twice (${JSON.stringify(Object.fromEntries(renders))})`,
    );
    t.equal(log.match(/^\[skyfarm\] done:/gm)?.length ?? 0, 1, `job ${index}: finished exactly once`);
  }
  t.same(
    partials,
    [],
    `no partial frame after any kill, no temporary file at the end (${temporariesSeen} seen between kill and restart)`,
  );
  t.same(readdirSync(join(home, 'work')), [], 'working folders removed');
  t.same(killLeftoverBlender(home), [], 'no Blender process left running');
  t.equal(landed.length, KILLS, `${KILLS} kills: ${landed.join('; ')}`);
});

/** Blender processes still working in this state dir (killed, and returned so the test can fail). */
function killLeftoverBlender(home: string): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      if (cmdline.includes(home) && /blender/i.test(cmdline.split('\0')[0] ?? '')) {
        found.push(Number(entry));
        process.kill(Number(entry), 'SIGKILL');
      }
    } catch {
      // gone
    }
  }
  return found;
}
