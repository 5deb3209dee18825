// `--blender-version X` on AWS: the render stage runs in X's worker image. Batch cannot override a
// job's image, so the daemon derives the render job definition for X from the stack's (image tag
// replaced, tagged with what it came from), registers it once and submits the render with it; copy
// and publish keep the stack's definitions (the default image).
import t from 'tap';
import { existsSync } from 'node:fs';
import path from 'node:path';
import type { Job } from '../protocol/generated/protocol.js';
import { awsEnv, cleanEnv } from './fakes/batch/aws-env.js';
import { renderAndWait, startFarm } from './fakes/batch/farm.js';
import { blenderSeriesNewerThan, blenderSkip, makeScene } from './helpers/scenes.js';
import {
  BASE_TAG,
  createJobDefinitions,
  imageForVersion,
  renderDefinitionFor,
} from '../daemon/src/images/job-definitions.js';
import { settingsFromEnv } from '../daemon/src/batch/bucket.js';

const IMAGE = '123456789012.dkr.ecr.us-east-1.amazonaws.com/skyfarm/worker';
// A version other than the farm's default that opens what the Blender under test saves: 3.6.5 for a
// 3.4 scene; for a newer Blender a patch release of its own series the farm lacks (5.2 → 5.2.9).
const newer = blenderSeriesNewerThan('3.6');
const X = newer ? `${newer}.9` : '3.6.5';
const X_NAME = X.replaceAll('.', '-');

t.test(
  'render --blender-version X runs the render stage in X’s image',
  { skip: blenderSkip, timeout: 115_000 },
  async (t) => {
    const farm = await startFarm(t);
    farm.ecr.push('skyfarm/worker', X);
    await farm.startDaemon();
    const scene = await makeScene(path.join(farm.dir, 'project'), { frames: [1, 2] });
    const output = path.join(farm.dir, 'out');
    const run = await renderAndWait(farm, scene, output, ['--blender-version', X]);
    t.equal(run.code, 0, run.stderr.slice(-3000));
    const job = JSON.parse(run.stdout) as Job;
    t.equal(job.state, 'done');
    t.ok(existsSync(path.join(output, 'frame_0001.png')) && existsSync(path.join(output, 'frame_0002.png')));

    const registered = farm.batch.calls.filter((c) => c.operation === 'registerjobdefinition');
    t.equal(registered.length, 1, 'one definition registered');
    t.match(registered[0]!.input, {
      jobDefinitionName: `skyfarm-render-blender-${X_NAME}`,
      type: 'container',
      containerProperties: { image: `${IMAGE}:${X}`, command: ['skyfarm-worker'] },
      tags: {
        [BASE_TAG]: 'arn:aws:batch:us-east-1:123456789012:job-definition/skyfarm-render:1',
        'skyfarm:blender-version': X,
      },
    });
    t.ok(
      (registered[0]!.input['retryStrategy'] as { evaluateOnExit?: unknown[] }).evaluateOnExit?.length,
      'the stack definition’s retry strategy is kept',
    );
    const submits = farm.batch.calls.filter((c) => c.operation === 'submitjob').map((c) => c.input);
    t.same(
      submits.map((s) => s['jobDefinition']),
      [
        'skyfarm-transfer',
        `arn:aws:batch:us-east-1:123456789012:job-definition/skyfarm-render-blender-${X_NAME}:1`,
        'skyfarm-transfer',
      ],
      `copy and publish: the stack’s definition; render: the one for ${X}`,
    );
    const renderJob = [...farm.batch.jobs.values()].find((j) => j.jobName === `skyfarm-${job.id}-render`)!;
    t.equal(renderJob.definition.image, `${IMAGE}:${X}`, `the render job runs the ${X} image`);
  },
);

t.test('derived definitions are reused, and renewed when the stack’s changes', async (t) => {
  const farm = await startFarm(t);
  const env = { ...cleanEnv(), ...awsEnv({ s3: farm.s3.endpoint, batch: farm.batch.endpoint }) };
  const defs = createJobDefinitions(settingsFromEnv(env, 'BATCH'));
  t.teardown(() => defs.destroy());
  const first = await renderDefinitionFor(defs, 'skyfarm-render', '4.1.1');
  t.equal(first, 'arn:aws:batch:us-east-1:123456789012:job-definition/skyfarm-render-blender-4-1-1:1');
  t.equal(await renderDefinitionFor(defs, 'skyfarm-render', '4.1.1'), first, 'reused');
  t.equal(
    await renderDefinitionFor(defs, 'skyfarm-render', '4.2.3'),
    'arn:aws:batch:us-east-1:123456789012:job-definition/skyfarm-render:1',
    'the default version is the stack’s own definition',
  );
  // The stack is updated: a new revision of its render definition. The derived one follows.
  const base = (await defs.find('skyfarm-render'))!;
  await defs.registerCopy(base.source, 'skyfarm-render', base.image!, {});
  const renewed = await renderDefinitionFor(defs, 'skyfarm-render', '4.1.1');
  t.equal(renewed, 'arn:aws:batch:us-east-1:123456789012:job-definition/skyfarm-render-blender-4-1-1:2');
  t.equal(farm.batch.calls.filter((c) => c.operation === 'registerjobdefinition').length, 3);

  t.equal(imageForVersion('host:5000/a/worker:4.2.3', '4.1'), 'host:5000/a/worker:4.1');
  t.equal(imageForVersion('host:5000/a/worker', '4.1'), 'host:5000/a/worker:4.1');
});
