// One hash, one checksum: every blob goes to S3 with its SHA-256 as `x-amz-checksum-sha256` and as the
// signed payload hash (single PUTs and every multipart part, whose checksums CompleteMultipartUpload
// names again; small blobs travel in packs, each pack a single PUT), never with a Content-MD5. In front of s3rver (which verifies nothing) a proxy checks
// what S3 checks and answers S3's own BadDigest error; a byte flipped on the way is refused, the upload
// sends that blob again, and the bucket ends up holding exactly the right bytes.
import t, { type Test } from 'tap';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startS3Proxy, startS3rver } from './fakes/s3-proxy/proxy.js';
import { createS3, type IS3 } from '../daemon/src/store/s3.js';
import { S3ObjectStore } from '../daemon/src/store/s3-store.js';
import { uploadProject } from '../daemon/src/project/upload.js';

const BUCKET = 'skyfarm-checksums';
const MiB = 1024 * 1024;
const sha256 = (data: Buffer) => createHash('sha256').update(data).digest();

function s3At(endpoint: string): IS3 {
  return createS3({
    bucket: BUCKET,
    region: 'us-east-1',
    endpoint,
    credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
  });
}

async function bytesOf(s3: IS3, key: string): Promise<Buffer | undefined> {
  const body = await s3.get(key);
  if (!body) return undefined;
  const chunks: Buffer[] = [];
  for await (const chunk of body) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

async function checkedStore(t: Test) {
  const dir = t.testdir({});
  const s3rver = await startS3rver(join(dir, 's3rver'), BUCKET);
  t.teardown(() => s3rver.close());
  const proxy = await startS3Proxy(s3rver.endpoint, { verifyChecksums: true });
  t.teardown(() => proxy.close());
  return { dir, proxy, viaProxy: s3At(proxy.endpoint), direct: s3At(s3rver.endpoint) };
}

t.test('the checking proxy refuses a body that does not match its checksum, as S3 does', async (t) => {
  const { proxy, viaProxy, direct } = await checkedStore(t);
  const body = randomBytes(1000);
  const wrong = sha256(randomBytes(10)).toString('base64');
  const error = await viaProxy.put('cas/wrong', body, { checksumSha256: wrong }).then(
    () => undefined,
    (e: unknown) => e,
  );
  t.match(error, { name: 'BadDigest', $metadata: { httpStatusCode: 400 } }, 'the SDK reads S3 BadDigest');
  t.equal(await direct.head('cas/wrong'), undefined, 'nothing was stored');
  await viaProxy.put('cas/right', body, { checksumSha256: sha256(body).toString('base64') });
  t.ok((await bytesOf(direct, 'cas/right'))?.equals(body), 'a matching body is stored');
  t.same(proxy.stats.refused, { BadDigest: 1 });
});

t.test('blobs go up verified by SHA-256 only; a byte damaged on the way is sent again', async (t) => {
  const { dir, proxy, viaProxy, direct } = await checkedStore(t);
  const root = join(dir, 'project');
  await mkdir(join(root, 'cache'), { recursive: true });
  const blend = join(root, 'shot.blend');
  const files = new Map<string, Buffer>([
    [blend, Buffer.concat([Buffer.from('BLENDER-v300'), randomBytes(3000)])],
  ]);
  for (let i = 0; i < 20; i++)
    files.set(join(root, 'cache', `frame_${i}.bphys`), randomBytes(2000 + i * 301));
  // 12 MiB over 5 MiB parts: three parts.
  files.set(join(root, 'cache', 'smoke.vdb'), randomBytes(12 * MiB + 17));
  for (const [path, data] of files) await writeFile(path, data);

  let damagedPut = '';
  let damagedPart = false;
  proxy.setCorrupt((op, key) => {
    if (op === 'PutObject' && (key.startsWith('cas/') || key.startsWith('packs/')) && !damagedPut) {
      damagedPut = key;
      return true;
    }
    if (op === 'UploadPart' && !damagedPart) return (damagedPart = true);
    return false;
  });

  const result = await uploadProject({
    jobId: 'j_checksums',
    blendFile: blend,
    sourceBlendFile: blend,
    projectRoot: root,
    dependencies: [...files.keys()].filter((p) => p !== blend).map((path) => ({ path, relative: true })),
    strict: false,
    store: new S3ObjectStore(viaProxy, { partSize: 5 * MiB, multipartThreshold: 5 * MiB }),
    progressIntervalMs: 0,
  });

  const stats = proxy.stats;
  t.equal(stats.corrupted, 2, 'one single PUT and one part were damaged on the way');
  t.same(stats.refused, { BadDigest: 2 }, 'S3 (the proxy) refused both with BadDigest');
  t.ok(damagedPut, `the damaged PUT was ${damagedPut}`);
  t.ok((stats.byOp.UploadPart ?? 0) >= 4, 'the large file went multipart, and its upload again');
  t.ok((stats.byOp.CompleteMultipartUpload ?? 0) >= 1, 'completed with every part checksum named');
  t.equal(
    stats.verified,
    (stats.byOp.PutObject ?? 0) + (stats.byOp.UploadPart ?? 0) - 2,
    'every other PUT and part carried a matching x-amz-checksum-sha256 and payload hash',
  );
  t.equal(stats.contentMd5, 0, 'no request carried a Content-MD5');
  t.equal(result.files, files.size);

  t.ok(damagedPut.startsWith('packs/'), 'the small files went up in a pack');
  let intact = 0;
  for (const [path, data] of files) {
    const relative = path.slice(root.length + 1);
    const entry = result.manifest.files[relative]!;
    const stored = entry.pack
      ? (await bytesOf(direct, `packs/${entry.pack}`))?.subarray(entry.offset!, entry.offset! + entry.size)
      : await bytesOf(direct, `cas/${entry.sha256}`);
    if (stored?.equals(data)) intact += 1;
    else t.fail(`${relative} is stored as ${stored?.length ?? 'nothing'} wrong bytes`);
  }
  t.equal(intact, files.size, `all ${files.size} files are stored as exactly their bytes`);
  t.same(
    proxy.uploads().filter((u) => u.state === 'open'),
    [],
    'the refused multipart upload was aborted, none left open',
  );
});
