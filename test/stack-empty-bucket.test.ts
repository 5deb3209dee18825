// emptyBucket's loop over the IS3 interface: versioned buckets lose every version and delete marker,
// per-object failures and deletes that do not take effect stop it with a clear error. (The unversioned
// path runs against s3rver in stack-destroy.test.ts.)
import t from 'tap';
import { emptyBucket, type IS3, type ObjectRef } from '../daemon/src/aws/s3.js';

function memoryS3(
  objects: ObjectRef[],
  opts: {
    versioning?: 'enabled' | 'suspended' | 'unversioned' | 'missing';
    pageSize?: number;
    stuck?: boolean;
    deny?: string;
  } = {},
) {
  const store = [...objects];
  const calls: string[] = [];
  const s3: IS3 = {
    async bucketVersioning() {
      calls.push('versioning');
      return opts.versioning ?? 'enabled';
    },
    async listFirstPage(_bucket, { versions }) {
      calls.push(`list:${versions}`);
      return store.slice(0, opts.pageSize ?? 3).map((o) => (versions ? o : { key: o.key }));
    },
    async deleteObjects(_bucket, page) {
      calls.push(`delete:${page.length}`);
      if (opts.deny)
        return page
          .filter((o) => o.key === opts.deny)
          .map((o) => ({ key: o.key, code: 'AccessDenied', message: 'Access Denied' }));
      if (opts.stuck) return [];
      for (const o of page) {
        const i = store.findIndex((s) => s.key === o.key && s.versionId === o.versionId);
        if (i >= 0) store.splice(i, 1);
      }
      return [];
    },
  };
  return { s3, store, calls };
}

const versions = (n: number): ObjectRef[] =>
  Array.from({ length: n }, (_, i) => ({ key: `jobs/j/${i % 3}.png`, versionId: `v${i}` }));

t.test('a versioned bucket: every version, page by page', async (t) => {
  const { s3, store, calls } = memoryS3(versions(8));
  const progress: number[] = [];
  const result = await emptyBucket(s3, 'b', { onProgress: (n) => progress.push(n) });
  t.same(result, { deleted: 8, missing: false });
  t.same(store, []);
  t.same(calls, [
    'versioning',
    'list:true',
    'delete:3',
    'list:true',
    'delete:3',
    'list:true',
    'delete:2',
    'list:true',
  ]);
  t.same(progress, [3, 6, 8]);
});

t.test('suspended versioning still lists versions; unversioned lists keys', async (t) => {
  const suspended = memoryS3(versions(2), { versioning: 'suspended' });
  await emptyBucket(suspended.s3, 'b');
  t.ok(suspended.calls.includes('list:true'));
  const plain = memoryS3([{ key: 'a' }, { key: 'b' }], { versioning: 'unversioned' });
  t.same(await emptyBucket(plain.s3, 'b'), { deleted: 2, missing: false });
  t.ok(plain.calls.includes('list:false'));
});

t.test('a missing bucket is nothing to do', async (t) => {
  const { s3, calls } = memoryS3(versions(2), { versioning: 'missing' });
  t.same(await emptyBucket(s3, 'gone'), { deleted: 0, missing: true });
  t.same(calls, ['versioning']);
});

t.test('failures stop with the object and code', async (t) => {
  const denied = memoryS3([{ key: 'cas/1' }, { key: 'cas/2' }], { deny: 'cas/2', versioning: 'unversioned' });
  await t.rejects(emptyBucket(denied.s3, 'farm'), {
    code: 'AWS_ACCESS_DENIED',
    message: 'Could not delete 1 object(s) from bucket farm, e.g. cas/2: AccessDenied Access Denied',
  });
  const stuck = memoryS3([{ key: 'x' }], { stuck: true, versioning: 'unversioned' });
  await t.rejects(emptyBucket(stuck.s3, 'farm'), {
    code: 'AWS_ERROR',
    message: /not going away \(e\.g\. x\)/,
  });
  t.same(
    stuck.calls,
    ['versioning', 'list:false', 'delete:1', 'list:false'],
    'gave up after one unchanged listing',
  );
  const slow = memoryS3(versions(30), { pageSize: 1 });
  await t.rejects(emptyBucket(slow.s3, 'farm', { maxRounds: 5 }), {
    message: /still has objects after 5 rounds/,
  });
  const controller = new AbortController();
  controller.abort();
  await t.rejects(emptyBucket(memoryS3(versions(3)).s3, 'farm', { signal: controller.signal }), {
    code: 'CANCELED',
  });
});
