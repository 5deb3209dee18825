// status_calls_per_poll: AWS Batch API calls the daemon makes per poll cycle while it tracks a
// 1,000-frame job. The real daemon (in this process) renders with --backend aws against the fake
// Batch endpoint (test/fakes/batch, configured from infra/skyfarm.yaml, spoken to by the real SDK
// client), the fake ECR holding the default worker image (the daemon checks the render's Blender
// version is built before it submits) and s3rver: it uploads the scene, submits copy → render (an array job, one child per frame:
// 1,000 children) → publish, and polls until they end. The containers are a stand-in that sleeps 0.5 s (a
// real Blender per frame would take hours); what is measured is the daemon's polling. Each poll
// (AwsBackend.pollOnce, counted by wrapping it) is matched with the Batch requests the fake received
// while it ran; the worst poll counts.
import { copyFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { AwsBackend } from '../../daemon/src/batch/aws-backend.js';
import type { Job } from '../../protocol/generated/protocol.js';
import { startFakeBatch } from '../../test/fakes/batch/server.js';
import { farmFromTemplate } from '../../test/fakes/batch/template.js';
import { startFakeEcr } from '../../test/fakes/ecr/server.js';
import { blenderEnv, findBlenderBinary, NO_BLENDER } from '../lib/blender.js';
import { startBenchDaemon } from '../lib/daemon.js';
import { withTimeout } from '../lib/proc.js';
import { isolatedEnv, startLocalS3 } from '../lib/s3.js';
import type { Metric } from '../lib/types.js';

const TERMINAL = new Set(['SUCCEEDED', 'FAILED']);

export const statusCallsPerPoll: Metric = {
  name: 'status_calls_per_poll',
  unit: 'calls',
  goal: { on: 'value', op: '<=', target: 1 },
  async run(ctx) {
    const blender = findBlenderBinary();
    if (!blender)
      return { value: null, note: `${NO_BLENDER} (the daemon probes the scene before submitting)` };
    const frames = ctx.sizes.batchFrames;
    const s3 = await startLocalS3(ctx);
    const bucket = 'skyfarm-bench-farm';
    await s3.createBucket(bucket);
    const template = farmFromTemplate({ bucket, gpu: false });
    const batch = await startFakeBatch({
      queues: template.queues,
      jobDefinitions: template.jobDefinitions,
      rules: template.rules,
      // The container: a stand-in that takes a moment and succeeds (`sh -c 'sleep 0.5' <stage>`).
      executables: { 'skyfarm-worker': ['/bin/sh', '-c', 'sleep 0.5', 'skyfarm-worker'] },
      cwd: ctx.tmp,
      maxRunning: 100,
      tickMs: 40,
    });
    ctx.cleanup(() => batch.close());
    // The worker image of the default Blender version, as `skyfarm images build` leaves it.
    const ecr = await startFakeEcr({ repositories: { 'skyfarm/worker': ['4.2.3'] } });
    ctx.cleanup(() => ecr.close());

    // Count polls: every AwsBackend.pollOnce, with the Batch requests made while it ran.
    const polls: Array<{ calls: number; operations: string[] }> = [];
    const original = Object.getOwnPropertyDescriptor(AwsBackend.prototype, 'pollOnce')!;
    const pollOnce = AwsBackend.prototype.pollOnce;
    AwsBackend.prototype.pollOnce = async function (this: AwsBackend) {
      const before = batch.calls.length;
      try {
        await pollOnce.call(this);
      } finally {
        const made = batch.calls.slice(before);
        polls.push({ calls: made.length, operations: made.map((c) => c.operation) });
      }
    };
    ctx.cleanup(() => Object.defineProperty(AwsBackend.prototype, 'pollOnce', original));

    const daemon = await startBenchDaemon(
      ctx,
      isolatedEnv({
        ...blenderEnv(ctx, 'status'),
        ...s3.env,
        AWS_ENDPOINT_URL_BATCH: batch.endpoint,
        AWS_ENDPOINT_URL_ECR: ecr.endpoint,
        SKYFARM_AWS_BUCKET: bucket,
        SKYFARM_BLENDER: blender,
      }),
      'status',
      { aws: { backend: { pollFastMs: 250, pollSlowMs: 750 } } },
    );
    try {
      const dir = path.join(ctx.tmp, 'status-scene');
      mkdirSync(path.join(dir, 'out'), { recursive: true });
      const blend = path.join(dir, 'shot.blend');
      copyFileSync(path.join(ctx.repoRoot, 'daemon', 'demo', 'demo.blend'), blend);
      // Jobs the daemon has finished (it sees the Batch jobs end on a poll, reads the outcome and
      // stops tracking); listened to from before the submit.
      const finished = new Set<string>();
      daemon.client.onEvent((event, data) => {
        const update = data as Job;
        if (event === 'job.update' && ['done', 'failed', 'canceled'].includes(update.state))
          finished.add(update.id);
      });
      const { job } = await withTimeout(
        daemon.client.request('render.submit', {
          blendFile: blend,
          frames: `1-${frames}`,
          chunkSize: 1,
          output: path.join(dir, 'out'),
          backend: 'aws',
        }),
        10 * 60_000,
        'render.submit --backend aws',
      );
      const stage = (name: string) => batch.byName(`skyfarm-${job.id}-${name}`)[0];
      await batch.waitFor(
        () => ['copy', 'render', 'publish'].every((s) => TERMINAL.has(stage(s)?.status ?? '')),
        20 * 60_000,
        'the three Batch jobs to end',
      );
      const final = await batch
        .waitFor(() => finished.has(job.id), 120_000, 'the job to end in the daemon')
        .then(
          () => 'ended',
          () => 'still tracked after 120 s',
        );
      const render = stage('render');
      const worst = Math.max(...polls.map((p) => p.calls));
      const total = polls.reduce((n, p) => n + p.calls, 0);
      const byOperation: Record<string, number> = {};
      for (const p of polls) for (const op of p.operations) byOperation[op] = (byOperation[op] ?? 0) + 1;
      return {
        value: worst,
        note:
          `${frames} frames as ${render?.arraySize ?? '?'} array children (chunk size 1); ${polls.length} polls made ` +
          `${total} Batch calls (${Object.entries(byOperation)
            .map(([op, n]) => `${op} ${n}`)
            .join(
              ', ',
            )}), mean ${(total / Math.max(1, polls.length)).toFixed(2)} per poll; poll period 250 ms; the fake Batch ran stand-in containers (sleep 0.5 s)`,
        details: {
          frames,
          arrayChildren: render?.arraySize,
          polls: polls.length,
          calls: total,
          byOperation,
          perPoll: polls.map((p) => p.calls),
          renderStatus: render?.status,
          daemonJob: final,
        },
      };
    } finally {
      await daemon.stop();
    }
  },
};
