// A daemon SIGKILLed while a split frame's parts render (issue #17) loses no finished part: the parts
// stay on EFS and their markers in S3 while no daemon runs, the next daemon re-attaches, no part is
// rendered again, and the merged frame lands in the output folder.
import t from 'tap';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import { blenderSkip } from './helpers/scenes.js';
import { projectRoot } from './helpers/cli.js';
import { crashableDaemons } from './helpers/crash-daemon.js';
import { makeNoisyScene } from './helpers/split-scenes.js';
import { startFarm } from './fakes/batch/farm.js';
import { jobKeys, type PartMarker } from '../daemon/src/batch/layout.js';
import type { Job } from '../protocol/generated/protocol.js';

// The built daemon with the AWS backend's poll timing for tests (as reliability-crash-aws.test.ts).
const LAUNCH = (repo: string) => String.raw`
import { startDaemon } from ${JSON.stringify(pathToFileURL(path.join(repo, 'dist/daemon/src/daemon.js')).href)};
const daemon = await startDaemon({
  stateDir: process.env.SKYFARM_HOME,
  port: 0,
  env: process.env,
  aws: { backend: { pollFastMs: 250, pollSlowMs: 750, runnableWarnMs: 60000, failurePublishTimeoutMs: 60000 } },
});
process.once('SIGTERM', () => daemon.stop().then(() => process.exit(0)));
`;

t.test(
  'SIGKILL while parts render: no finished part lost',
  { skip: blenderSkip, timeout: 280_000 },
  async (t) => {
    const farm = await startFarm(t, { maxRunning: 2 });
    const launcher = path.join(farm.dir, 'launch.mjs');
    writeFileSync(launcher, LAUNCH(projectRoot));
    const scene = await makeNoisyScene(path.join(farm.dir, 'project', 'shot.blend'), {
      samples: 16,
      outputPath: '//render/shot_####',
    });
    const output = path.join(farm.dir, 'out');
    const daemons = crashableDaemons(t, {
      dir: farm.dir,
      home: farm.stateDir,
      args: [launcher],
      env: { ...farm.daemonEnv, SKYFARM_HOME: farm.stateDir },
      clientName: 'split-crash',
    });
    let jobId = '';
    const died = await daemons.life(
      // Killed as soon as it has counted the first finished part.
      { label: 'first part counted', on: 'log', pattern: 'frame 1: [1-3]/4 parts', nth: 1, delayMs: 0 },
      {
        timeoutMs: 150_000,
        during: async () => {
          const client = await daemons.connect();
          jobId = (
            await client.request('render.submit', {
              blendFile: scene,
              backend: 'aws',
              frames: '1',
              split: 4,
              output,
            })
          ).job.id;
          client.close();
        },
      },
    );
    t.equal(died, 'first part counted', 'the daemon died after counting a part');
    const partsDir = path.join(farm.efs, 'jobs', jobId, 'parts', '1');
    const finished = existsSync(partsDir) ? readdirSync(partsDir).filter((n) => /^\d+\.exr$/.test(n)) : [];
    t.ok(finished.length >= 1, `finished parts stay on EFS with no daemon running (${finished.join(', ')})`);

    const last = await daemons.start(null);
    const client = await daemons.connect();
    let job: Job | undefined;
    const deadline = Date.now() + 150_000;
    while (Date.now() < deadline) {
      job = (await client.request('jobs.get', { jobId })).job;
      if (['done', 'failed', 'canceled'].includes(job.state)) break;
      await sleep(300);
    }
    client.close();
    last.child.kill('SIGTERM');
    await last.exited;
    t.equal(job?.state, 'done', 'the next daemon finished the job', { message: job?.message });
    t.same(readdirSync(output), ['shot_0001.exr'], 'the merged frame is in the output folder');
    const render = farm.batch.byName(`skyfarm-${jobId}-render`);
    t.equal(render.length, 1, 'the render was submitted once');
    t.same(
      render[0]?.children?.map((c) => c.attempts.length),
      [1, 1, 1, 1],
      'every part rendered once',
    );
    const markers = await Promise.all(
      [0, 1, 2, 3].map((part) => farm.bucket.getJson<PartMarker>(jobKeys(jobId).part(1, part))),
    );
    t.same(
      markers.map((m) => m?.state),
      ['done', 'done', 'done', 'done'],
      'each part left its marker',
    );
  },
);
