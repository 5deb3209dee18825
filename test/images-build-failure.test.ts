// A failing image build is reported with the phase that failed, CodeBuild's message and where its log
// is; the CLI exits non-zero and the version is not listed. A build still running at the time limit
// is reported as such (skyfarm stops waiting; the build is not counted as pushed).
import t from 'tap';
import type { ImageBuild, ImagesBuildResult } from '../protocol/generated/protocol.js';
import { runSkyfarm } from './fakes/batch/farm.js';
import { startImagesFarm } from './fakes/codebuild/images-farm.js';
import { connectTestClient } from './helpers/daemon.js';

const DOCKER_FAILURE =
  'Error while executing command: docker build --build-arg "BLENDER_VERSION=$BLENDER_VERSION" -t "$REPOSITORY_URI:$BLENDER_VERSION" -f infra/Dockerfile .. Reason: exit status 22';

t.test('a failed build names the failing phase, its message and the log', async (t) => {
  const farm = await startImagesFarm(t, {
    tags: ['4.2.3'],
    codeBuild: { failures: { '3.6.9': { phase: 'BUILD', message: DOCKER_FAILURE } } },
  });
  const daemon = await farm.startDaemon();
  const watcher = await connectTestClient(t, daemon);
  const events: ImageBuild[] = [];
  watcher.onEvent((event, data) => {
    if (event === 'image.build') events.push(data as ImageBuild);
  });

  const run = await runSkyfarm(['images', 'build', '--blender-version', '3.6.9'], farm.stateDir, farm.dir);
  t.equal(run.code, 2, 'exit 2: the build failed');
  t.equal(run.stdout, '', 'nothing on stdout');
  t.match(run.stderr, /IN_PROGRESS\s+BUILD\n/, 'BUILD was streamed');
  t.match(run.stderr, /FAILED\s+FINALIZING \(failed in BUILD\)/, 'then the failure');
  t.match(run.stderr, /FAILED\s+COMPLETED \(failed in BUILD\)/, 'followed to the end');
  t.match(
    run.stderr,
    /skyfarm: image build for Blender 3\.6\.9 failed: the build FAILED in phase BUILD: COMMAND_EXECUTION_ERROR: Error while executing command: docker build .*exit status 22/,
  );
  t.match(
    run.stderr,
    /build log: \/skyfarm\/skyfarm \/ codebuild\/[0-9a-f-]+\n\s+https:\/\/console\.aws\.amazon\.com\/cloudwatch/,
  );
  t.notMatch(run.stderr, /POST_BUILD/, 'no phase after the failed one ran (on-failure: ABORT)');
  t.match(events.at(-1), { status: 'FAILED', failedPhase: 'BUILD', phase: 'COMPLETED' });

  const json = await runSkyfarm(
    ['images', 'build', '--blender-version', '3.6.9', '--json'],
    farm.stateDir,
    farm.dir,
  );
  t.equal(json.code, 2);
  const { build } = JSON.parse(json.stdout) as ImagesBuildResult;
  t.match(build, {
    status: 'FAILED',
    failedPhase: 'BUILD',
    message: /^COMMAND_EXECUTION_ERROR: Error while executing command: docker build/,
    logGroup: '/skyfarm/skyfarm',
    logStream: /^codebuild\//,
    blenderVersion: '3.6.9',
  });

  t.same(
    farm.ecr.images('skyfarm/worker').flatMap((i) => i.tags),
    ['4.2.3'],
    'nothing was pushed',
  );
  const listed = await watcher.request('images.list', {});
  t.same(
    listed.images.map((i) => i.version),
    ['4.2.3'],
  );
});

t.test('a source that is not in the bucket fails DOWNLOAD_SOURCE with CodeBuild’s reason', async (t) => {
  // The uploaded context vanished before CodeBuild fetched it (e.g. removed from the bucket).
  const farm = await startImagesFarm(t, { tags: [], codeBuild: { sourceExists: async () => false } });
  const daemon = await farm.startDaemon();
  const client = await connectTestClient(t, daemon);
  const { build } = await client.request('images.build', { blenderVersion: '4.2.3' });
  t.equal(build.status, 'FAILED');
  t.equal(build.failedPhase, 'DOWNLOAD_SOURCE');
  t.match(build.message, /^CLIENT_ERROR: NoSuchKey/);
});

t.test('a build still running at the time limit: reported, not counted as pushed', async (t) => {
  const farm = await startImagesFarm(t, { tags: ['4.2.3'], codeBuild: { stepMs: 2_000 } });
  const daemon = await farm.startDaemon();
  const client = await connectTestClient(t, daemon);
  const started = Date.now();
  const { build } = await client.request('images.build', { blenderVersion: '3.6.5', timeoutSeconds: 1 });
  t.ok(Date.now() - started < 10_000, 'returned soon after the limit');
  t.match(build, {
    status: 'IN_PROGRESS',
    timedOut: true,
    message: /^stopped waiting after 1 s; build skyfarm-worker-image:\S+ is still IN_PROGRESS/,
  });

  const cli = await runSkyfarm(
    ['images', 'build', '--blender-version', '3.6.5', '--timeout', '0'],
    farm.stateDir,
    farm.dir,
  );
  t.equal(cli.code, 1, '--timeout must be a positive number of minutes');
  t.match(cli.stderr, /--timeout must be a positive whole number/);
});
