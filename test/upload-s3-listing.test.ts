// The store lists its blobs beyond S3's first page: with 2,345 blobs in the bucket, the product's own
// listing (IS3.list, and the S3 store's presence check built on it) follows the continuation tokens
// through three pages and finds a blob on the last one without a HEAD. (s3rver runs with OpenSSL's
// legacy provider: without it, its second page answers 500.)
import t from 'tap';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { startS3Proxy, startS3rver } from './fakes/s3-proxy/proxy.js';
import { mapLimit } from '../daemon/src/project/collect.js';
import { createS3, type IS3 } from '../daemon/src/store/s3.js';
import { S3ObjectStore } from '../daemon/src/store/s3-store.js';

const BUCKET = 'skyfarm-listing';
const BLOBS = 2345;

function s3At(endpoint: string): IS3 {
  return createS3({
    bucket: BUCKET,
    region: 'us-east-1',
    endpoint,
    credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
  });
}

t.test('a listing of more than 1,000 blobs follows every page', { timeout: 120_000 }, async (t) => {
  const dir = t.testdir({});
  const s3rver = await startS3rver(join(dir, 's3rver'), BUCKET);
  t.teardown(() => s3rver.close());
  const proxy = await startS3Proxy(s3rver.endpoint);
  t.teardown(() => proxy.close());
  const direct = s3At(s3rver.endpoint);
  const blobs = Array.from({ length: BLOBS }, (_, i) => {
    const body = Buffer.from(`blob ${i} `.repeat(1 + (i % 7)));
    return { sha256: createHash('sha256').update(body).digest('hex'), size: body.length, body };
  });
  await mapLimit(blobs, 32, (blob) =>
    direct.put(`cas/${blob.sha256}`, blob.body, {
      checksumSha256: Buffer.from(blob.sha256, 'hex').toString('base64'),
    }),
  );
  await direct.put('jobs/j_1/job.json', Buffer.from('{}')); // outside the prefix

  const viaProxy = s3At(proxy.endpoint);
  const pages: Array<{ count: number; more: boolean }> = [];
  const keys = new Set<string>();
  for await (const page of viaProxy.list('cas/')) {
    pages.push({ count: page.entries.length, more: page.more });
    for (const entry of page.entries) keys.add(entry.key);
  }
  t.same(
    pages,
    [
      { count: 1000, more: true },
      { count: 1000, more: true },
      { count: 345, more: false },
    ],
    'three pages: two full, then the rest',
  );
  t.equal(keys.size, BLOBS, 'every blob once');
  t.ok(
    blobs.every((blob) => keys.has(`cas/${blob.sha256}`)),
    'exactly the blobs under cas/',
  );

  proxy.resetStats();
  const store = new S3ObjectStore(viaProxy);
  const presence = store.presence!(BLOBS, { sizeHint: BLOBS });
  const last = [...blobs].sort((a, b) => (a.sha256 < b.sha256 ? 1 : -1))[0]!;
  t.equal(await presence.has(last), true, 'the last blob in key order (on page 3) is present');
  t.equal(await presence.has({ sha256: 'f'.repeat(64), size: 1 }), false, 'an absent blob is not');
  t.equal(presence.listed, BLOBS, 'the listing counted every blob');
  t.equal(proxy.stats.byOp.ListObjects, 3, 'three LIST requests');
  t.equal(proxy.stats.byOp.HeadObject ?? 0, 0, 'and no HEAD');
});
