// `skyfarm images build --blender-version X` uploads the build context, starts the stack's CodeBuild
// project with BLENDER_VERSION=X, streams every phase to the CLI and (as `image.build` events) to every
// WebSocket client until the build ends; the buildspec pushes repo:X and `skyfarm images` lists X.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import type { ImageBuild, ImagesListResult } from '../protocol/generated/protocol.js';
import { runSkyfarm } from './fakes/batch/farm.js';
import { PHASES } from './fakes/codebuild/server.js';
import { startImagesFarm } from './fakes/codebuild/images-farm.js';
import { connectTestClient } from './helpers/daemon.js';

t.test('build streams its phases, pushes repo:X, and X is listed', async (t) => {
  // Slow enough phases that each one is seen by a poll.
  const farm = await startImagesFarm(t, { tags: ['4.2.3'], codeBuild: { stepMs: 150 } });
  const daemon = await farm.startDaemon();
  const watcher = await connectTestClient(t, daemon);
  const events: ImageBuild[] = [];
  watcher.onEvent((event, data) => {
    if (event === 'image.build') events.push(data as ImageBuild);
  });
  // Cached before the build: the build must make the new version visible at once.
  const before = await watcher.request('images.list', {});
  t.same(
    before.images.map((i) => i.version),
    ['4.2.3'],
  );

  const run = await runSkyfarm(['images', 'build', '--blender-version', '3.6.5'], farm.stateDir, farm.dir);
  t.equal(run.code, 0, run.stderr);
  t.match(run.stdout, /^pushed skyfarm\/worker:3\.6\.5$/m);
  t.match(run.stderr, /building skyfarm\/worker:3\.6\.5 \(CodeBuild skyfarm-worker-image:[0-9a-f-]+\)/);
  const printed = run.stderr
    .split('\n')
    .map((line) => /^\d\d:\d\d:\d\d\s+(\S+)\s+(\S+)/.exec(line))
    .filter((m) => m !== null)
    .map((m) => m[2]);
  t.same(printed, [...PHASES], 'the CLI printed every phase in order');
  t.match(run.stderr, /SUCCEEDED\s+COMPLETED/);

  // Every WebSocket client got the same phases.
  t.same([...new Set(events.map((e) => e.phase))], [...PHASES]);
  t.ok(
    events.slice(0, -1).every((e) => e.status === 'IN_PROGRESS'),
    'in progress until the last event',
  );
  t.match(events.at(-1), {
    status: 'SUCCEEDED',
    phase: 'COMPLETED',
    blenderVersion: '3.6.5',
    repository: 'skyfarm/worker',
    logGroup: '/skyfarm/skyfarm',
    logStream: /^codebuild\//,
  });

  // What CodeBuild was asked: the template's project, BLENDER_VERSION=X, the uploaded source.
  const start = farm.codeBuild.calls.find((c) => c.operation === 'StartBuild')!;
  t.equal(start.input['projectName'], 'skyfarm-worker-image');
  t.same(start.input['environmentVariablesOverride'], [
    { name: 'BLENDER_VERSION', value: '3.6.5', type: 'PLAINTEXT' },
  ]);
  t.equal(start.input['sourceTypeOverride'], 'S3');
  const location = String(start.input['sourceLocationOverride']);
  t.match(location, new RegExp(`^${farm.s3.bucket}/build/worker-[0-9a-f]{16}\\.zip$`));
  const polls = farm.codeBuild.calls.filter((c) => c.operation === 'BatchGetBuilds');
  t.ok(polls.length >= PHASES.length - 1 && polls.length < 200, `${polls.length} polls, bounded`);

  // The source is a zip with what infra/Dockerfile copies.
  const zip = path.join(farm.dir, 'context.zip');
  await farm.bucket.download(location.slice(farm.s3.bucket.length + 1), zip);
  const check = path.join(farm.dir, 'check.py');
  writeFileSync(
    check,
    'import sys, zipfile, json\nz = zipfile.ZipFile(sys.argv[1])\nprint(json.dumps({"bad": z.testzip(), "names": z.namelist()}))\n',
  );
  const listing = JSON.parse(execFileSync('python3', [check, zip], { encoding: 'utf8' })) as {
    bad: string | null;
    names: string[];
  };
  t.equal(listing.bad, null, 'every entry passes its CRC check');
  for (const name of [
    'infra/Dockerfile',
    'package.json',
    'package-lock.json',
    'tsconfig.build.json',
    'protocol/generated/protocol.ts',
    'daemon/src/cli/main.ts',
    'daemon/blender/render_chunk.py',
    'infra/worker/main.ts',
  ]) {
    t.ok(listing.names.includes(name), `the build context has ${name}`);
  }
  t.notOk(
    listing.names.some(
      (n) => n.startsWith('node_modules/') || n.startsWith('dist/') || n.startsWith('test/'),
    ),
    'no node_modules, dist or tests',
  );

  // The new version is listed (the cached listing was dropped), the image pushed as repo:X.
  const listed = await runSkyfarm(['images', '--json'], farm.stateDir, farm.dir);
  t.equal(listed.code, 0, listed.stderr);
  t.same(
    (JSON.parse(listed.stdout) as ImagesListResult).images.map((i) => i.version),
    ['4.2.3', '3.6.5'],
  );
  t.same(
    farm.ecr.images('skyfarm/worker').flatMap((i) => i.tags),
    ['4.2.3', '3.6.5'],
  );

  // A second build with the same sources reuses the uploaded context.
  const again = await watcher.request('images.build', { blenderVersion: '4.1.1' });
  t.equal(again.build.status, 'SUCCEEDED');
  const second = farm.codeBuild.calls.filter((c) => c.operation === 'StartBuild')[1]!;
  t.equal(second.input['sourceLocationOverride'], location, 'same content, same key');
});
