// A Blender started ahead of its chunk (render/warm-blender.ts), with real Blender: it renders the
// same frames a cold start renders, it is used once, an unused one stops after its idle time, and
// one whose daemon died (stdin closed) exits by itself. The local pipeline uses it: `skyfarm logs`
// says the chunk rendered in it.
import t from 'tap';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { findBlender, renderChunk, type RenderChunkOptions } from '../daemon/src/render/blender.js';
import { WarmBlender } from '../daemon/src/render/warm-blender.js';
import { blenderSkip, makeScene, readPng } from './helpers/scenes.js';
import { connectTestClient, startTestDaemon } from './helpers/daemon.js';
import { blenderProcessesIn } from './helpers/crash-daemon.js';
import { until } from './helpers/until.js';
import { processAlive } from '../daemon/src/config/daemon-lock.js';

const gone = (pid: number) => () => !processAlive(pid);
const noBlenderIn = (home: string) => () => blenderProcessesIn(home).length === 0;

t.test('a Blender started ahead', { skip: blenderSkip }, async (t) => {
  const blender = (await findBlender()).path;

  t.test('renders the chunk like a cold start, once', async (t) => {
    const dir = t.testdir();
    const blendFile = await makeScene(dir, { frames: [1, 2] });
    const base: Omit<RenderChunkOptions, 'outputDir' | 'onEvent'> = {
      blender,
      blendFile,
      scene: 'Scene',
      frames: [1, 2],
      filePattern: 'frame_####',
    };
    const warm = new WarmBlender();
    t.teardown(() => warm.discard());
    warm.prepare(blender);
    warm.prepare(blender); // a second submit meanwhile: still one Blender
    t.equal(warm.stats.started, 1, 'one Blender started for two prepares');
    const spawned: number[] = [];
    const lines: string[] = [];
    const warmRun = await renderChunk({
      ...base,
      outputDir: path.join(dir, 'warm'),
      warm,
      onEvent: () => undefined,
      onLine: (line) => lines.push(line),
      onSpawn: (pid) => spawned.push(pid),
    });
    t.same(warmRun.done, [1, 2], 'both frames rendered');
    t.equal(warmRun.exitCode, 0);
    t.equal(warm.stats.taken, 1, 'the chunk took the warm Blender');
    t.match(lines.join('\n'), /rendering in a Blender started ahead/, 'and said so in the log');
    t.equal(spawned.length, 1, 'its pid was reported (the daemon records it to stop it after a crash)');

    const coldRun = await renderChunk({
      ...base,
      outputDir: path.join(dir, 'cold'),
      warm,
      onEvent: () => undefined,
    });
    t.same(coldRun.done, [1, 2], 'the next chunk starts its own Blender');
    t.equal(warm.stats.taken, 1, 'a warm Blender is used once');
    for (const frame of ['frame_0001.png', 'frame_0002.png']) {
      const [warmPng, coldPng] = await Promise.all([
        readPng(path.join(dir, 'warm', frame)),
        readPng(path.join(dir, 'cold', frame)),
      ]);
      t.same([warmPng.width, warmPng.height], [coldPng.width, coldPng.height], `${frame}: same size`);
      // The files differ in their text chunks (date, render time); the pixels must not.
      t.ok(warmPng.pixels.equals(coldPng.pixels), `${frame}: the same pixels as a cold start`);
    }
  });

  t.test('is not used for another Blender, nor with settings given at start', async (t) => {
    const warm = new WarmBlender();
    t.teardown(() => warm.discard());
    warm.prepare(blender);
    t.equal(warm.take('/usr/local/bin/other-blender'), undefined, 'another executable');
    const dir = t.testdir();
    const blendFile = await makeScene(dir, { frames: [1, 1] });
    const run = await renderChunk({
      blender,
      blendFile,
      scene: 'Scene',
      frames: [1],
      outputDir: path.join(dir, 'out'),
      filePattern: 'frame_####',
      threads: 1, // `-t` is a start-up option
      warm,
      onEvent: () => undefined,
    });
    t.same(run.done, [1]);
    t.equal(warm.stats.taken, 0, 'a chunk with its own threads setting starts its own Blender');
  });

  t.test('an unused one stops after its idle time', async (t) => {
    const warm = new WarmBlender({ idleMs: 300 });
    t.teardown(() => warm.discard());
    warm.prepare(blender);
    await new Promise((resolve) => setTimeout(resolve, 100));
    const child = warm.take(blender)?.child;
    t.ok(child?.pid, 'ready before its idle time');
    child?.stdin?.end(); // given nothing to render: it ends quietly
    const code = await new Promise<number | null>((resolve) => child?.once('exit', resolve));
    t.equal(code, 0, 'end-of-file ends it with exit code 0');

    warm.prepare(blender);
    const pid = warm.readyPid;
    t.ok(pid, 'a new one started');
    await t.resolves(
      until('the idle Blender to stop', gone(pid!), 20_000, 100),
      'stopped after the idle time',
    );
    t.equal(warm.take(blender), undefined, 'and no longer offered');
  });

  t.test('exits by itself when the daemon that started it dies', async (t) => {
    // A separate node process plays the daemon: it starts a warm Blender, prints its pid and is killed.
    const script = `
      import { WarmBlender } from ${JSON.stringify(new URL('../daemon/src/render/warm-blender.ts', import.meta.url).href)};
      const warm = new WarmBlender({ idleMs: 600000 });
      warm.prepare(${JSON.stringify(blender)});
      console.log(warm.readyPid);
      setInterval(() => undefined, 1000);
    `;
    const daemon = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const pid = await new Promise<number>((resolve, reject) => {
      daemon.stdout.once('data', (data: Buffer) => resolve(Number(String(data).trim())));
      daemon.once('exit', () => reject(new Error('the stand-in daemon exited early')));
    });
    t.ok(processAlive(pid), 'the warm Blender runs');
    daemon.kill('SIGKILL');
    await t.resolves(
      until('the orphaned Blender to exit', gone(pid), 30_000, 100),
      'and exits once its daemon is gone',
    );
  });

  t.test('the local pipeline renders its first chunk in it', async (t) => {
    const dir = t.testdir();
    const home = path.join(dir, 'home');
    // Blenders inherit the daemon's environment: SKYFARM_HOME names them as this test's.
    const daemon = await startTestDaemon(t, { stateDir: home, env: { SKYFARM_HOME: home } });
    const client = await connectTestClient(t, daemon);
    const blendFile = await makeScene(dir, { frames: [1, 2] });
    const { job } = await client.request('render.submit', {
      blendFile,
      frames: '1-2',
      output: path.join(dir, 'out'),
    });
    let state = job.state;
    const deadline = Date.now() + 120_000;
    while (!['done', 'failed', 'canceled'].includes(state) && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 200));
      state = (await client.request('jobs.get', { jobId: job.id })).job.state;
    }
    t.equal(state, 'done', 'the job rendered');
    const { lines } = await client.request('jobs.logs', { jobId: job.id });
    t.match(
      lines.join('\n'),
      /rendering in a Blender started ahead/,
      'its chunk used the Blender started at submit',
    );
    await t.resolves(
      until('no Blender of this daemon', noBlenderIn(home), 10_000, 100),
      'no Blender left once the job is done',
    );

    // A refused submission (no camera) and a job canceled before its render stop theirs too.
    const noCamera = await makeScene(path.join(dir, 'no camera'), { frames: [1, 1], camera: false });
    await t.rejects(client.request('render.submit', { blendFile: noCamera }), { code: 'NO_CAMERA' });
    await t.resolves(
      until('no Blender of this daemon', noBlenderIn(home), 10_000, 100),
      'none left after a refused submission',
    );
    const slow = await makeScene(path.join(dir, 'slow'), { frames: [1, 40], samples: 512 });
    const second = (
      await client.request('render.submit', { blendFile: slow, output: path.join(dir, 'out2') })
    ).job;
    await client.request('jobs.cancel', { jobId: second.id });
    await t.resolves(
      until('no Blender of this daemon', noBlenderIn(home), 10_000, 100),
      'none left after a cancel',
    );
  });
});
