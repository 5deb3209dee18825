// Less common ends of an AWS job, through the fakes with the real worker and real Blender:
// - cancel after the render succeeded (publish still queued): the rule does not fire, so the daemon
//   submits a cleanup publish that reports the cancel and removes the working folder;
// - a copy that fails (a blob vanished from the bucket): Batch fails the render by dependency, the
//   rule's publish reports and cleans up, and the job fails naming the copy.
import t from 'tap';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { blenderSkip, makeScene } from './helpers/scenes.js';
import { runSkyfarm, startFarm } from './fakes/batch/farm.js';
import type { Job } from '../protocol/generated/protocol.js';
import {
  blobKey,
  packKey,
  jobKeys,
  type JobResult,
  type WorkerJobDocument,
} from '../daemon/src/batch/layout.js';
import type { Manifest } from '../daemon/src/project/manifest.js';

t.test(
  'cancel while publish waits: a cleanup publish of the daemon’s own cleans up',
  { skip: blenderSkip, timeout: 115_000 },
  async (t) => {
    const farm = await startFarm(t);
    await farm.startDaemon();
    const scene = await makeScene(path.join(farm.dir, 'project'), { frames: [1, 2] });
    const submit = await runSkyfarm(
      ['render', scene, '--backend', 'aws', '--output', path.join(farm.dir, 'out'), '--json'],
      farm.stateDir,
      farm.dir,
    );
    t.equal(submit.code, 0, 'submitted', { stderr: submit.stderr });
    const jobId = (JSON.parse(submit.stdout) as Job).id;
    const named = (stage: string) => farm.batch.byName(`skyfarm-${jobId}-${stage}`)[0];
    await farm.batch.waitFor(
      () => named('render')?.status === 'RUNNING' || named('render')?.status === 'STARTING',
      90_000,
      'render to start',
    );
    farm.batch.holdQueue('skyfarm-transfer', true); // publish will wait for capacity
    await farm.batch.waitFor(
      () => named('render')?.status === 'SUCCEEDED' && named('publish')?.status === 'RUNNABLE',
      90_000,
      'publish to wait',
    );

    const cancel = await runSkyfarm(['cancel', jobId, '--json'], farm.stateDir, farm.dir);
    t.equal(cancel.code, 0, 'cancel exits 0', { stderr: cancel.stderr });
    t.equal((JSON.parse(cancel.stdout) as Job).state, 'canceled');
    t.equal(named('publish')?.status, 'FAILED', 'the queued publish was terminated');
    const cleanup = named('cleanup');
    t.ok(cleanup, 'the daemon submitted a cleanup job');
    t.equal(cleanup?.queue.name, 'skyfarm-transfer', 'on the transfer queue');
    t.equal(farm.batch.ruleSubmissions.length, 0, 'the rule does not fire for a render that succeeded');
    farm.batch.holdQueue('skyfarm-transfer', false);
    await farm.batch.waitFor(() => cleanup?.status === 'SUCCEEDED', 60_000, 'the cleanup to finish');
    t.notOk(existsSync(path.join(farm.efs, 'jobs', jobId)), 'the working folder is removed after the cancel');
    const result = await farm.bucket.getJson<JobResult>(jobKeys(jobId).result);
    t.equal(result?.state, 'canceled');
    t.same(
      result?.ok.map((o) => o.frame),
      [1, 2],
      'what was rendered is still published',
    );
  },
);

t.test(
  'a failing copy fails the job with the copy’s reason; the folder is cleaned',
  { skip: blenderSkip, timeout: 115_000 },
  async (t) => {
    const farm = await startFarm(t);
    const daemon = await farm.startDaemon();
    farm.batch.holdQueue('skyfarm-transfer', true);
    const scene = await makeScene(path.join(farm.dir, 'project'), {
      frames: [1, 2],
      textures: [{ path: 'tex/a.png' }],
    });
    const submit = await runSkyfarm(
      ['render', scene, '--backend', 'aws', '--output', path.join(farm.dir, 'out'), '--json'],
      farm.stateDir,
      farm.dir,
    );
    t.equal(submit.code, 0, 'submitted', { stderr: submit.stderr });
    const jobId = (JSON.parse(submit.stdout) as Job).id;
    await farm.batch.waitFor(
      () => farm.batch.byName(`skyfarm-${jobId}-publish`).length === 1,
      60_000,
      'all three submitted',
    );
    const doc = await farm.bucket.getJson<WorkerJobDocument>(jobKeys(jobId).job);
    const manifest = await farm.bucket.getJson<Manifest>(doc!.manifestKey);
    const texture = Object.entries(manifest!.files).find(([file]) => file.endsWith('a.png'))![1];
    // The texture's bytes vanish from the bucket (a small file: inside a pack).
    await farm.bucket.delete(texture.pack ? packKey(texture.pack) : blobKey(texture.sha256));
    farm.batch.holdQueue('skyfarm-transfer', false);

    await farm.batch.waitFor(
      () => ['failed', 'done'].includes(daemon.jobs.get(jobId).state),
      90_000,
      'the job to end',
    );
    const job = daemon.jobs.get(jobId);
    t.equal(job.state, 'failed');
    t.match(job.message, /^copy failed: Essential container in task exited \(exit code 1\)/);
    t.same(job.stages, { upload: 'done', copy: 'failed', render: 'skipped', publish: 'done' });
    t.equal(farm.batch.byName(`skyfarm-${jobId}-render`)[0]?.statusReason, 'Dependent Job failed');
    const copyLog = farm.batch.byName(`skyfarm-${jobId}-copy`)[0]?.attempts[0]?.output.join('\n');
    t.match(copyLog, /copy: FAILED/, 'the copy log says it failed');
    t.equal(farm.batch.ruleSubmissions.length, 1, 'the rule published after the dependent render failed');
    const result = await farm.bucket.getJson<JobResult>(jobKeys(jobId).result);
    t.equal(result?.state, 'failed');
    t.notOk(
      existsSync(path.join(farm.efs, 'jobs', jobId)),
      'the working folder is removed after the failure',
    );
  },
);
