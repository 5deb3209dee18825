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
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { blenderSkip, makeScene, readPng } from './helpers/scenes.js';
import {
  blenderProcessesIn,
  crashableDaemons,
  crashSeed,
  localCliDaemon,
  type CrashPlan as HookPlan,
  type DaemonLife,
} from './helpers/crash-daemon.js';
import { seededRandom } from './helpers/seeded-random.js';
import type { DaemonClient } from '../daemon/src/client/daemon-client.js';
import type { Job } from '../protocol/generated/protocol.js';

const SEED = crashSeed();
const KILLS = Number(process.env['SKYFARM_CRASH_KILLS'] ?? 12);
const FRAMES = [1, 2, 3];
const FINISHED = ['done', 'failed', 'canceled'];

/** A kill point of the preload, or one the test makes itself (`timer`: after `delayMs`). */
type CrashPlan = HookPlan | (Omit<HookPlan, 'on'> & { on: 'timer' });

t.test('SIGKILL at random points: every local job finishes once, whole', { skip: blenderSkip }, async (t) => {
  t.comment(`crash seed ${SEED}, ${KILLS} kills (rerun with SKYFARM_CRASH_SEED=${SEED})`);
  const r = seededRandom(SEED);
  const dir = t.testdir({});
  const home = join(dir, 'home');

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

  const daemons = crashableDaemons(t, {
    dir,
    home,
    ...localCliDaemon(home, { SKYFARM_LOG_LEVEL: 'info' }),
    clientName: 'crash-test',
  });
  t.teardown(() => killLeftoverBlender(home));

  async function startDaemon(plan: CrashPlan | null): Promise<DaemonLife> {
    const before = daemons.logLength();
    const daemon = await daemons.start(plan && plan.on !== 'timer' ? plan : null);
    // A plan may fire while the life resumes its jobs, before it announced itself: that is the kill
    // landing where planned (the loop sees the life gone), not a failed start.
    if (daemon.started || (plan && daemons.crashedAt(before) === plan.label)) return daemon;
    throw new Error(
      `the daemon did not start (${daemon.exit()}): ${readFileSync(daemons.log, 'utf8').slice(-2000)}`,
    );
  }
  const connect = () => daemons.connect();

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
    const logBefore = daemons.logLength();
    const daemon = await startDaemon(plan);
    const toSubmit = [...fresh, ...[...submitted].filter((index) => jobs[index]!.id === undefined)];
    // Counted as submitted before connecting: a life that dies first leaves them to the next one.
    for (const index of fresh) submitted.add(index);
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
      if (!daemons.running().has(daemon)) {
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
    if (daemons.running().has(daemon)) {
      process.kill(daemon.pid, 'SIGKILL');
      await daemon.exited;
    }
    const hookLine = daemons.crashedAt(logBefore);
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
  const found = blenderProcessesIn(home);
  for (const pid of found) process.kill(pid, 'SIGKILL');
  return found;
}
