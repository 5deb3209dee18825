// `skyfarm images` lists the Blender versions that have a worker image in the farm's ECR repository
// (tag = version), newest first, with pushed date and size; every page of DescribeImages is read.
import t from 'tap';
import { runSkyfarm } from './fakes/batch/farm.js';
import { startImagesFarm } from './fakes/codebuild/images-farm.js';
import type { ImagesListResult } from '../protocol/generated/protocol.js';

t.test('lists every tagged version, newest first, across pages', async (t) => {
  const farm = await startImagesFarm(t, { tags: ['3.6.5', '4.2.3', '3.4.1', '4.2', '4.1.1'], pageLimit: 2 });
  // An untagged (superseded) image is not a version.
  farm.ecr.push(farm.repository, '4.2.3');
  await farm.startDaemon();

  const json = await runSkyfarm(['images', '--json'], farm.stateDir, farm.dir);
  t.equal(json.code, 0, json.stderr);
  const result = JSON.parse(json.stdout) as ImagesListResult;
  t.equal(result.repository, 'skyfarm/worker');
  t.same(
    result.images.map((i) => i.version),
    ['4.2.3', '4.2', '4.1.1', '3.6.5', '3.4.1'],
  );
  for (const image of result.images) {
    t.match(image.pushedAt, /^\d{4}-\d\d-\d\dT/, `${image.version} has a pushed date`);
    t.ok((image.sizeBytes ?? 0) > 1e9, `${image.version} has a size`);
    t.match(image.digest, /^sha256:[0-9a-f]{64}$/);
  }
  const describes = farm.ecr.calls.filter((c) => c.operation === 'DescribeImages');
  t.equal(describes.length, 3, 'three pages of two');
  t.same(describes[0]!.input['filter'], { tagStatus: 'TAGGED' });
  t.equal(describes[1]!.input['nextToken'], '2', 'the next page is asked with its token');

  const text = await runSkyfarm(['images'], farm.stateDir, farm.dir);
  t.equal(text.code, 0, text.stderr);
  t.match(text.stdout, /worker images in skyfarm\/worker/);
  t.match(text.stdout, /4\.2\.3\s+\d{4}-\d\d-\d\dT\S+\s+1\.40 GiB/);
});

t.test('an empty or missing repository says how to build an image', async (t) => {
  const farm = await startImagesFarm(t, { tags: [] });
  await farm.startDaemon();
  const empty = await runSkyfarm(['images'], farm.stateDir, farm.dir);
  t.equal(empty.code, 0, empty.stderr);
  t.match(
    empty.stdout,
    /no worker images in skyfarm\/worker yet: build one with `skyfarm images build --blender-version X`/,
  );

  t.equal(farm.ecr.calls.length, 1);

  const bare = await startImagesFarm(t, { tags: null });
  await bare.startDaemon();
  const missing = await runSkyfarm(['images', '--json'], bare.stateDir, bare.dir);
  t.equal(missing.code, 0, missing.stderr);
  t.same(
    JSON.parse(missing.stdout),
    { repository: 'skyfarm/worker', images: [] },
    'no repository: no images',
  );
  t.equal(bare.ecr.calls.length, 1, 'asked once (RepositoryNotFoundException)');
});
