// Small files travel in packs: a project of many small files (a simulation cache) goes to S3 as a few
// pack objects, not one PUT each; every blob can be read back from its pack; the farm's copy stage
// (the real worker process) lays the project out from the packs, one download per pack, and refuses a
// pack whose bytes were altered; a re-upload that trusts nothing confirms the packs with one listing
// and sends nothing.
import t from 'tap';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { openDatabase } from '../daemon/src/db/database.js';
import { HashCache } from '../daemon/src/project/hash-cache.js';
import { KnownBlobs } from '../daemon/src/project/known-blobs.js';
import { uploadProject } from '../daemon/src/project/upload.js';
import { createS3 } from '../daemon/src/store/s3.js';
import { S3ObjectStore } from '../daemon/src/store/s3-store.js';
import { jobKeys } from '../daemon/src/batch/layout.js';
import { runWorkerProcess } from './fakes/batch/aws-env.js';
import { startWorkerHost } from './fakes/batch/worker-host.js';
import { startS3Proxy } from './fakes/s3-proxy/proxy.js';
import { seededRandom } from './helpers/seeded-random.js';
import { storedBytes } from './helpers/stored-blob.js';

const MiB = 1024 * 1024;
const SMALL_FILES = 1500;
const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

t.test(
  'small blobs go up in packs and come back out of them on the farm',
  { timeout: 120_000 },
  async (t) => {
    const dir = t.testdir({});
    const root = join(dir, 'project');
    await mkdir(join(root, 'cache'), { recursive: true });
    const random = seededRandom(14);
    const bytesOf = (size: number) => random.bytes(size);
    const blend = join(root, 'shot.blend');
    await writeFile(blend, Buffer.concat([Buffer.from('BLENDER-v300'), bytesOf(4000)]));
    const sources = new Map<string, Buffer>(); // relative path → bytes
    for (let i = 0; i < SMALL_FILES; i++) {
      const relative = `cache/fluid_${String(i).padStart(5, '0')}.bphys`;
      // Some files share their bytes (a cache repeats itself): one blob for them.
      const data = i % 100 === 99 ? sources.get('cache/fluid_00000.bphys')! : bytesOf(random.int(200, 3200));
      sources.set(relative, data);
      await writeFile(join(root, relative), data);
    }
    for (const [relative, size] of [
      ['textures/big_a.exr', Math.round(1.5 * MiB)],
      ['textures/big_b.exr', 3 * MiB],
    ] as const) {
      const data = bytesOf(size);
      sources.set(relative, data);
      await mkdir(join(root, 'textures'), { recursive: true });
      await writeFile(join(root, relative), data);
    }
    sources.set('shot.blend', await readFile(blend));

    const host = await startWorkerHost(t, dir);
    const endpoint = host.env('x')['AWS_ENDPOINT_URL_S3']!;
    const proxy = await startS3Proxy(endpoint);
    t.teardown(() => proxy.close());
    const s3 = (via: string) =>
      createS3({
        bucket: host.bucket.name,
        region: 'us-east-1',
        endpoint: via,
        credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
      });
    // Packs of about 1 MiB here (8 MiB by default), so the project makes several.
    const store = new S3ObjectStore(s3(proxy.endpoint), { packTarget: MiB });
    const db = openDatabase(join(dir, 'state.sqlite'));
    t.teardown(() => db.close());
    const hasher = new HashCache(db);
    const known = new KnownBlobs(db);
    const upload = (trustKnownMs: number) =>
      uploadProject({
        jobId: null,
        blendFile: blend,
        sourceBlendFile: blend,
        projectRoot: root,
        dependencies: [...sources.keys()]
          .filter((relative) => relative !== 'shot.blend')
          .map((relative) => ({ path: join(root, relative), relative: true })),
        strict: true,
        store,
        hasher,
        known,
        trustKnownMs,
      });

    // 1. Cold: one PUT per pack and per large blob.
    const cold = await upload(0);
    const entries = Object.entries(cold.manifest.files);
    const smallBytes = entries.filter(([, e]) => e.size <= MiB).reduce((sum, [, e]) => sum + e.size, 0);
    const blobs = new Map(entries.map(([, e]) => [e.sha256, e]));
    t.equal(cold.files, SMALL_FILES + 3, 'every file is in the manifest');
    t.equal(cold.blobsUploaded, blobs.size, 'every distinct blob is stored once');
    const puts = proxy.stats.log.filter((r) => r.op === 'PutObject').map((r) => r.key);
    t.same(
      puts.filter((key) => key.startsWith('cas/')).sort(),
      entries
        .filter(([, e]) => e.size > MiB)
        .map(([, e]) => `cas/${e.sha256}`)
        .sort(),
      'only the blobs over 1 MiB are objects of their own',
    );
    const packPuts = puts.filter((key) => key.startsWith('packs/'));
    t.equal(cold.packsUploaded, packPuts.length, 'the reply counts the packs');
    t.ok(
      packPuts.length >= Math.floor(smallBytes / MiB) && packPuts.length <= Math.ceil(smallBytes / MiB) + 1,
      `${SMALL_FILES + 1} small files (${(smallBytes / MiB).toFixed(1)} MiB) in ${packPuts.length} packs of about 1 MiB`,
    );
    t.ok(puts.length < 20, `${puts.length} PUTs for ${cold.files} files`);
    for (const [relative, entry] of entries) {
      if (entry.size > MiB) continue;
      if (!entry.pack || entry.offset === undefined) {
        t.fail(`${relative} has no pack location`);
        continue;
      }
      if (!(await storedBytes(s3(endpoint), entry))?.equals(sources.get(relative)!))
        t.fail(`${relative}: its pack range differs`);
    }
    t.pass('every small file is its range of its pack');

    // 2. The farm's copy stage: the real worker process lays the project out from the bucket.
    const manifestKey = 'manifests/packs-test.json';
    await host.bucket.putJson(manifestKey, cold.manifest);
    const copyJob = async (jobId: string) => {
      await host.bucket.putJson(jobKeys(jobId).job, { version: 1, jobId, manifestKey });
      return runWorkerProcess(['copy'], host.env(jobId));
    };
    proxy.resetStats();
    const copy = await copyJob('j_packs1');
    t.equal(copy.code, 0, 'copy exits 0', { output: copy.output });
    const laidOut = join(host.efs, 'jobs', 'j_packs1', 'project');
    let same = 0;
    for (const [relative, data] of sources) {
      if ((await readFile(join(laidOut, relative))).equals(data)) same += 1;
      else t.fail(`${relative} differs in the job folder`);
    }
    t.equal(same, sources.size, 'every file of the job folder has the bytes of the original');
    t.match(
      copy.output,
      new RegExp(
        `${cold.files} files .*\\(${cold.files - blobs.size} from the EFS cache, ${blobs.size} downloaded`,
      ),
      'the first copy downloads every distinct blob once',
    );

    // 3. Another job of the same project: everything from the EFS cache.
    const again = await copyJob('j_packs2');
    t.equal(again.code, 0, 'the second copy exits 0', { output: again.output });
    t.match(again.output, new RegExp(`${cold.files} from the EFS cache, 0 downloaded`), 'nothing downloaded');

    // 4. A pack altered in the bucket is refused; nothing of it enters the cache.
    const victim = entries.find(([, e]) => e.pack && e.sha256 !== entries[0]![1].sha256)![1];
    const packBody = await s3(endpoint).get(`packs/${victim.pack!}`);
    const chunks: Buffer[] = [];
    for await (const chunk of packBody!) chunks.push(chunk as Buffer);
    const altered = Buffer.concat(chunks);
    altered[victim.offset! + 1] = altered[victim.offset! + 1]! ^ 0xff;
    await s3(endpoint).put(`packs/${victim.pack!}`, altered);
    const freshEfs = host.env('j_packs3', { SKYFARM_EFS_ROOT: join(dir, 'efs2') });
    await host.bucket.putJson(jobKeys('j_packs3').job, { version: 1, jobId: 'j_packs3', manifestKey });
    const corrupted = await runWorkerProcess(['copy'], freshEfs);
    t.not(corrupted.code, 0, 'the copy fails');
    t.match(corrupted.output, /hashes to [0-9a-f]{64}: refusing a corrupted file/, 'and says why');
    t.notOk(
      existsSync(join(dir, 'efs2', 'cas', victim.sha256.slice(0, 2), victim.sha256)),
      'the altered blob is not in the cache',
    );

    // 5. A re-upload that trusts nothing it saw: the packs are confirmed by listing, nothing is sent.
    proxy.resetStats();
    const confirmed = await upload(0);
    t.match(confirmed, { bytesUploaded: 0, blobsUploaded: 0, packsUploaded: 0, filesHashed: 0 });
    t.equal(proxy.stats.byOp.PutObject ?? 0, 0, 'no PUT');
    t.ok((proxy.stats.byOp.ListObjects ?? 0) <= 2, 'one listing of packs/ (and of cas/ for the large blobs)');
    t.equal(
      sha256(Buffer.from(JSON.stringify(confirmed.manifest))),
      sha256(Buffer.from(JSON.stringify(cold.manifest))),
      'the same manifest, pack locations included',
    );
  },
);
