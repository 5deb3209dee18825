// A Blender version that is not `\d+.\d+(.\d+)?` is refused before anything reaches AWS: by the CLI,
// by the daemon's schema for WebSocket clients, and for renders (--blender-version).
import t from 'tap';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { runSkyfarm } from './fakes/batch/farm.js';
import { startImagesFarm } from './fakes/codebuild/images-farm.js';
import { connectTestClient } from './helpers/daemon.js';

t.test('bad versions never reach CodeBuild, ECR or S3', async (t) => {
  const farm = await startImagesFarm(t, { tags: ['4.2.3'] });
  const daemon = await farm.startDaemon();
  for (const version of ['4.x', 'latest', '4', '4.2.3.1', '4.2.3; rm -rf /', ' 4.2.3', '']) {
    const run = await runSkyfarm(['images', 'build', '--blender-version', version], farm.stateDir, farm.dir);
    t.equal(run.code, 1, `"${version}": exit 1`);
    t.match(
      run.stderr,
      /--blender-version must look like 4\.2 or 4\.2\.3/,
      `"${version}": says what is wanted`,
    );
  }
  const usage = await runSkyfarm(['images', 'build'], farm.stateDir, farm.dir);
  t.equal(usage.code, 1);
  t.match(usage.stderr, /usage: skyfarm images \[build --blender-version X\]/);

  const client = await connectTestClient(t, daemon);
  await t.rejects(client.request('images.build', { blenderVersion: '4.2-beta' }), {
    code: 'INVALID_MESSAGE',
  });

  // A render with a malformed --blender-version is refused before the image lookup.
  const blend = path.join(farm.dir, 'scene.blend');
  writeFileSync(blend, 'BLENDER-v304RENDH');
  const render = await runSkyfarm(
    ['render', blend, '--backend', 'aws', '--blender-version', 'newest', '--prepare-only', '--json'],
    farm.stateDir,
    farm.dir,
  );
  t.equal(render.code, 1);
  t.match(JSON.parse(render.stdout), { error: { code: 'BAD_ARGUMENT', message: /not "newest"/ } });

  t.same(farm.awsCalls(), [], 'no ECR or CodeBuild call at all');
  t.same(await farm.bucket.list(''), [], 'nothing uploaded');
});
