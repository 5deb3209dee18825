// The add-on inside real Blender (`blender -b`) rendering on AWS, with AWS made of local fakes: the
// daemon deploys stack `skyfarm` through the fake CloudFormation, the add-on sees the AWS backend
// available, and Render with the backend set to AWS runs the real worker with real Blender on the fake
// Batch (a folder as EFS, s3rver as S3, the worker image checked in the fake ECR). The Blender script
// records, on the main thread, what the add-on shows: the states upload → copy → render → publish →
// done, frames done step by step, the newest frame's preview while it renders (Show Last Frame loads
// it), the frames downloaded into the output folder at the end (Open Output opens it); and a chunk
// that fails shows `failed` with the daemon's message naming the failed frame.
import t, { type Test } from 'tap';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { RunningDaemon } from '../daemon/src/daemon.js';
import { DaemonClient } from '../daemon/src/client/daemon-client.js';
import type { StackInfo } from '../protocol/generated/protocol.js';
import type { FakeBatch } from './fakes/batch/server.js';
import { startStackFakes } from './fakes/batch/stack.js';
import type { FakeEcr } from './fakes/ecr/server.js';
import type { FakeSes } from './fakes/ses/server.js';
import { blenderVersion as sceneBlenderVersion, makeScene, readPng } from './helpers/scenes.js';
import { addonRoot, blenderEnv, blenderVersion, runBlenderScript } from '../blender-addon/tests/harness.js';

t.comment(`using ${blenderVersion()}`);

const minute = 60_000;
// What the add-on sends when the AWS panel's Blender version is empty: the version of this Blender.
const ADDON_BLENDER_VERSION = sceneBlenderVersion ?? '3.4.1';

interface AwsFarm {
  daemon: RunningDaemon;
  batch: FakeBatch;
  ses: FakeSes;
  ecr: FakeEcr;
  stack: StackInfo;
  dir: string;
}

/** Every fake, a daemon wired to them (no SKYFARM_AWS_BUCKET: the stack is the only farm it knows), and stack `skyfarm` deployed. */
async function startAwsFarm(t: Test): Promise<AwsFarm> {
  const dir = mkdtempSync(path.join(tmpdir(), 'skyfarm-addon-aws-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  // The stack's repository holds an image for the Blender version the add-on sends, and one other.
  const fakes = await startStackFakes(t, {
    dir,
    images: { 'skyfarm/worker': ['4.2.3', ADDON_BLENDER_VERSION] },
  });

  // `skyfarm deploy` creates the stack; the daemon remembers its outputs in its state dir.
  const deployer = await fakes.startDaemon(fakes.daemonEnv());
  const client = await DaemonClient.connect({
    stateDir: fakes.stateDir,
    clientName: 'test',
    clientVersion: '1',
  });
  const { stack } = await client.request('stack.deploy', {});
  client.close();
  await deployer.stop();
  t.equal(stack.status, 'CREATE_COMPLETE', 'stack skyfarm deployed');
  const bucket = stack.outputs['BucketName']!;
  await fakes.createBucket(bucket);

  // The stack's Batch side, with the bucket its job definitions and publish-after-failure rule name.
  // One container at a time: a chunk's frames finish one after the other, as on a small farm.
  const batch = await fakes.startBatch({ bucket, namePrefix: 'skyfarm', gpu: false, maxRunning: 1 });
  const daemon = await fakes.startDaemon(fakes.daemonEnv(batch.endpoint));
  return { daemon, batch, ses: fakes.ses, ecr: fakes.ecr, stack, dir };
}

/** An `xdg-open` on Blender's PATH that records what Open Output asked to open (wm.path_open runs it). */
function fakeXdgOpen(dir: string): { binDir: string; opened: () => string[] } {
  const binDir = path.join(dir, 'bin');
  mkdirSync(binDir, { recursive: true });
  const record = path.join(dir, 'opened.txt');
  const script = path.join(binDir, 'xdg-open');
  writeFileSync(script, `#!/bin/sh\nprintf '%s\\n' "$1" >> '${record}'\n`);
  chmodSync(script, 0o755);
  return {
    binDir,
    opened: () => (existsSync(record) ? readFileSync(record, 'utf8').split('\n').filter(Boolean) : []),
  };
}

/**
 * Keeps the publish stage RUNNING (its mail waits in the fake SES) until the daemon has reported the
 * job `publishing` for a second, then lets it finish. A publish shorter than the daemon's poll is
 * rightly never shown; on a loaded machine the polls stretch and it often was, so the panel's
 * publish state could not be checked.
 */
async function holdPublishUntilShown(farm: AwsFarm): Promise<void> {
  farm.ses.hold(true);
  const watcher = await DaemonClient.connect({
    stateDir: farm.daemon.paths.root,
    clientName: 'test',
    clientVersion: '1',
  });
  try {
    const deadline = Date.now() + 4 * minute;
    while (Date.now() < deadline) {
      const { jobs } = await watcher.request('jobs.list', {});
      if (jobs.some((job) => job.state === 'publishing')) {
        await new Promise((resolve) => setTimeout(resolve, 1000));
        return;
      }
      if (jobs.some((job) => job.state === 'done' || job.state === 'failed')) return;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  } finally {
    farm.ses.hold(false);
    watcher.close();
  }
}

function resultLine(stdout: string): Record<string, unknown> {
  const line = stdout.split('\n').find((l) => l.startsWith('AWS_RESULT '));
  if (!line) throw new Error('the Blender script printed no AWS_RESULT');
  return JSON.parse(line.slice('AWS_RESULT '.length)) as Record<string, unknown>;
}

t.test(
  'Render on AWS from Blender: followed frame by frame, frames downloaded; a failing chunk',
  async (t) => {
    const farm = await startAwsFarm(t);
    const xdg = fakeXdgOpen(farm.dir);

    await t.test('a render the panel follows frame by frame', async (t) => {
      const project = path.join(farm.dir, 'project');
      // Enough samples that a frame takes longer than a poll (250 ms) on an idle machine too: two frames
      // finishing within one poll would be reported together.
      const blendFile = await makeScene(project, { frames: [1, 4], samples: 128 });
      const output = path.join(farm.dir, 'out');
      const submitsBefore = farm.batch.calls.filter((c) => c.operation === 'submitjob').length;
      const publishHeld = holdPublishUntilShown(farm);
      const result = await runBlenderScript(t, {
        script: 'aws_background.py',
        blendFile,
        args: {
          scenario: 'follow',
          addonSource: addonRoot,
          outputDir: output,
          resolution: [320, 180],
          previewSize: [256, 144],
          chunkSize: 2,
          notifyEmail: 'artist@example.com',
          expectedFrames: ['frame_0001.png', 'frame_0002.png', 'frame_0003.png', 'frame_0004.png'],
          blenderVersion: ADDON_BLENDER_VERSION,
          renderTimeout: 180,
        },
        env: blenderEnv(t, {
          SKYFARM_HOME: farm.daemon.paths.root,
          PATH: `${xdg.binDir}:${process.env['PATH'] ?? ''}`,
        }),
        timeoutMs: 4 * minute,
      });
      await publishHeld;
      const seen = resultLine(result.stdout);
      t.comment(
        `states seen: ${JSON.stringify(seen['states'])}; frames done seen: ${JSON.stringify(seen['framesDone'])}`,
      );
      const jobId = seen['jobId'] as string;

      // What AWS got: three stages on the stack's queues, the image for this Blender looked up.
      const submits = farm.batch.calls
        .filter((c) => c.operation === 'submitjob')
        .slice(submitsBefore)
        .map((c) => c.input);
      t.same(
        submits.map((s) => [s['jobName'], s['jobQueue']]),
        [
          [`skyfarm-${jobId}-copy`, farm.stack.outputs['TransferQueueArn']],
          [`skyfarm-${jobId}-render`, farm.stack.outputs['CpuSpotQueueArn']],
          [`skyfarm-${jobId}-publish`, farm.stack.outputs['TransferQueueArn']],
        ],
        'copy, render and publish on the deployed stack’s queues',
      );
      t.equal(
        (submits[1]?.['arrayProperties'] as { size?: number } | undefined)?.size,
        2,
        'two chunks of two frames',
      );
      t.ok(
        farm.ecr.calls.some((c) => c.input['repositoryName'] === 'skyfarm/worker'),
        `the worker image for Blender ${ADDON_BLENDER_VERSION} was checked in the stack's repository`,
      );

      // The frames on disk are real, at the resolution set in Blender (unsaved), and Open Output opened them.
      const frames = readdirSync(output)
        .filter((f) => f.endsWith('.png'))
        .sort();
      t.same(frames, ['frame_0001.png', 'frame_0002.png', 'frame_0003.png', 'frame_0004.png']);
      for (const frame of frames) {
        const png = await readPng(path.join(output, frame));
        t.same([png.width, png.height], [320, 180], `${frame} is 320×180`);
      }
      t.same(xdg.opened(), [output], 'Open Output opened the output folder');
      const mail = await farm.ses.waitForMail(1, 10_000);
      t.ok(
        mail.some((m) => m.to.includes('artist@example.com')),
        'the notify address from Blender got the mail',
      );
    });

    await t.test('a failing chunk shows failed with the daemon’s message', async (t) => {
      const project = path.join(farm.dir, 'failing');
      const blendFile = await makeScene(project, { frames: [1, 4], failFirstFrame: true });
      const output = path.join(farm.dir, 'out-failing');
      const result = await runBlenderScript(t, {
        script: 'aws_background.py',
        blendFile,
        args: {
          scenario: 'failure',
          addonSource: addonRoot,
          outputDir: output,
          chunkSize: 2,
          blenderVersion: ADDON_BLENDER_VERSION,
          renderTimeout: 180,
        },
        env: blenderEnv(t, { SKYFARM_HOME: farm.daemon.paths.root }),
        timeoutMs: 4 * minute,
      });
      const seen = resultLine(result.stdout);
      t.match(seen['errorMessage'], /^1 of 4 frames failed \(1\)/, 'the panel names the failed frame');
      t.equal(seen['state'], 'failed');
      // The stack's rule published what rendered (the render ran in a version-derived job definition).
      t.same(
        farm.batch.ruleSubmissions.map((r) => [r.rule, r.parameters['skyfarmJobId']]),
        [['RenderFailedRule/publish-after-failure', seen['jobId']]],
        'the failed render was published by the stack’s publish-after-failure rule',
      );
      // The frames that did render were published and downloaded.
      t.same(
        readdirSync(output)
          .filter((f) => f.endsWith('.png'))
          .sort(),
        ['frame_0002.png', 'frame_0003.png', 'frame_0004.png'],
        'the frames that rendered are in the output folder',
      );
    });
  },
);
