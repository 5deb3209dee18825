// `--backend aws` renders (and --prepare-only) are refused with IMAGE_MISSING when the farm has no
// worker image for the job's Blender version (--blender-version X, else the farm's default): the
// message lists the versions there are and the command that builds the missing one. Nothing is
// uploaded or created. The listing is cached (one ECR call for a burst of submits, none per frame);
// after `images build` the same render goes through.
import t from 'tap';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { jobKeys, type WorkerJobDocument } from '../daemon/src/batch/layout.js';
import { runSkyfarm } from './fakes/batch/farm.js';
import { startImagesFarm } from './fakes/codebuild/images-farm.js';
import { connectTestClient } from './helpers/daemon.js';
import {
  blenderCommand,
  blenderSeriesNewerThan,
  blenderSkip,
  blenderVersion,
  makeScene,
} from './helpers/scenes.js';

t.test('a version without an image is refused with the list; after the build it renders', async (t) => {
  const farm = await startImagesFarm(t, { tags: ['4.2.3', '3.4.1'] });
  const daemon = await farm.startDaemon({ env: { SKYFARM_BLENDER: blenderCommand } });
  // The check comes before Blender looks at the scene: a file with a .blend header is enough here.
  const stub = path.join(farm.dir, 'stub.blend');
  writeFileSync(stub, 'BLENDER-v304RENDH');

  const run = await runSkyfarm(
    ['render', stub, '--backend', 'aws', '--blender-version', '3.6.5', '--wait'],
    farm.stateDir,
    farm.dir,
  );
  t.equal(run.code, 1, 'exit 1');
  t.match(
    run.stderr,
    'skyfarm: the farm has no worker image for Blender 3.6.5 (repository skyfarm/worker; available: 4.2.3, 3.4.1). ' +
      'Build it with `skyfarm images build --blender-version 3.6.5`, or render with --blender-version 4.2.3.',
  );
  const json = await runSkyfarm(
    ['render', stub, '--backend', 'aws', '--blender-version', '3.6.5', '--prepare-only', '--json'],
    farm.stateDir,
    farm.dir,
  );
  t.equal(json.code, 1);
  t.match(JSON.parse(json.stdout), {
    error: { code: 'IMAGE_MISSING', message: /available: 4\.2\.3, 3\.4\.1/ },
  });

  // A burst of submits (WebSocket clients) shares one cached listing.
  const client = await connectTestClient(t, daemon);
  for (let i = 0; i < 5; i++) {
    await t.rejects(
      client.request('render.submit', {
        blendFile: stub,
        backend: 'aws',
        aws: { blenderVersion: '2.93.18', prepareOnly: true },
      }),
      {
        code: 'IMAGE_MISSING',
        message: /Blender 2\.93\.18 .*skyfarm images build --blender-version 2\.93\.18/,
      },
    );
  }
  t.equal(
    farm.ecr.calls.filter((c) => c.operation === 'DescribeImages').length,
    1,
    'one DescribeImages for seven submits',
  );
  t.same((await client.request('jobs.list', {})).jobs, [], 'no job was created');
  t.same(await farm.bucket.list(''), [], 'nothing was uploaded');

  // Build it; the same render now passes the check (--prepare-only: upload and job.json).
  const built = await client.request('images.build', { blenderVersion: '3.6.5' });
  t.equal(built.build.status, 'SUCCEEDED');
  t.test('then it renders', { skip: blenderSkip }, async (t) => {
    // 3.6.5 opens a 3.4 scene; a newer Blender's scene needs an image of its own series (5.2: 5.2.9).
    const newer = blenderSeriesNewerThan('3.6');
    const version = newer ? `${newer}.9` : '3.6.5';
    if (newer) {
      const own = await client.request('images.build', { blenderVersion: version });
      t.equal(own.build.status, 'SUCCEEDED');
    }
    const scene = await makeScene(path.join(farm.dir, 'project'), { frames: [1, 2] });
    const ok = await runSkyfarm(
      ['render', scene, '--backend', 'aws', '--blender-version', version, '--prepare-only'],
      farm.stateDir,
      farm.dir,
    );
    t.equal(ok.code, 0, ok.stderr);
    const { jobId } = JSON.parse(ok.stdout) as { jobId: string };
    const doc = await farm.bucket.getJson<WorkerJobDocument>(jobKeys(jobId).job);
    t.equal(doc?.blenderVersion, version, 'job.json names the version');
    // Without --blender-version: the image of the Blender here (Debian's 3.4.1 has one), else the
    // newest of its series (the one built above for a Blender newer than 3.6), else the farm's
    // default (4.2.3).
    const byDefault = await runSkyfarm(
      ['render', scene, '--backend', 'aws', '--prepare-only', '--json'],
      farm.stateDir,
      farm.dir,
    );
    t.equal(byDefault.code, 0, byDefault.stderr);
    const defaultDoc = await farm.bucket.getJson<WorkerJobDocument>(
      jobKeys((JSON.parse(byDefault.stdout) as { jobId: string }).jobId).job,
    );
    t.equal(
      defaultDoc?.blenderVersion,
      newer ? version : blenderVersion === '3.4.1' ? '3.4.1' : '4.2.3',
      'the default image for this Blender',
    );
    t.equal(
      farm.ecr.calls.filter((c) => c.operation === 'DescribeImages').length,
      2,
      'listed again once after the build, then cached',
    );
  });
});

t.test('the farm default needs an image too (copy and publish run in it)', async (t) => {
  const farm = await startImagesFarm(t, { tags: ['3.4.1'] });
  await farm.startDaemon({ env: { SKYFARM_AWS_BLENDER_VERSION: '4.2.3' } });
  const stub = path.join(farm.dir, 'stub.blend');
  writeFileSync(stub, 'BLENDER-v304RENDH');
  const run = await runSkyfarm(
    ['render', stub, '--backend', 'aws', '--prepare-only', '--json'],
    farm.stateDir,
    farm.dir,
  );
  t.equal(run.code, 1);
  t.match(JSON.parse(run.stdout), {
    error: { code: 'IMAGE_MISSING', message: /Blender 4\.2\.3 .*available: 3\.4\.1/ },
  });
  // Another version with an image is not enough while the default has none.
  const other = await runSkyfarm(
    ['render', stub, '--backend', 'aws', '--blender-version', '3.4.1', '--prepare-only', '--json'],
    farm.stateDir,
    farm.dir,
  );
  t.equal(other.code, 1);
  t.match(JSON.parse(other.stdout), {
    error: {
      code: 'IMAGE_MISSING',
      message:
        'the farm has no worker image for Blender 4.2.3 (the farm default: copy and publish run in it) ' +
        '(repository skyfarm/worker; available: 3.4.1). Build it with `skyfarm images build --blender-version 4.2.3`.',
    },
  });
});
