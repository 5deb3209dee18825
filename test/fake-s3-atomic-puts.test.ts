// The test S3 (s3rver) behaves like S3 where the product relies on it: a GET while the same key is
// being overwritten returns the old object or the new one, whole, never an empty or partial one
// (S3's PUTs are atomic; s3rver's own store truncates and writes in place, which once made a test
// read an empty result.json). See test/fakes/s3rver/atomic-puts.ts.
import t from 'tap';
import { join } from 'node:path';
import { text } from 'node:stream/consumers';
import { startS3rver } from './fakes/s3-proxy/proxy.js';
import { createS3 } from '../daemon/src/store/s3.js';

const BUCKET = 'skyfarm-atomic';

t.test('a GET during an overwrite returns one whole version', { timeout: 120_000 }, async (t) => {
  const s3rver = await startS3rver(join(t.testdir({}), 's3rver'), BUCKET);
  t.teardown(() => s3rver.close());
  const s3 = createS3({
    bucket: BUCKET,
    region: 'us-east-1',
    endpoint: s3rver.endpoint,
    credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
  });
  const versions = ['a', 'b'].map((letter) => letter.repeat(2 * 1024 * 1024));
  await s3.put('jobs/j/result.json', Buffer.from(versions[0]!));

  let writing = true;
  const writer = (async () => {
    for (let i = 1; i <= 30; i++) await s3.put('jobs/j/result.json', Buffer.from(versions[i % 2]!));
    writing = false;
  })();
  const seen = { whole: 0, other: [] as string[] };
  const reader = async () => {
    while (writing) {
      try {
        const body = await s3.get('jobs/j/result.json');
        const read = body ? await text(body) : '';
        if (versions.includes(read)) seen.whole += 1;
        else seen.other.push(`${read.length} bytes`);
      } catch (error) {
        seen.other.push(`failed: ${(error as Error).message}`);
      }
    }
  };
  await Promise.all([writer, reader(), reader()]);
  t.ok(seen.whole > 10, `GETs during 30 overwrites: ${seen.whole} whole`);
  t.same(seen.other, [], 'no GET failed or returned an empty or partial object');
});
