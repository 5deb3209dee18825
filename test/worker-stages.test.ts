// The container worker run for real, as a Batch container would run it: s3rver as S3, a temp folder
// as EFS, real Blender, the fake SES endpoint. copy → render (two chunks, then a retried chunk) →
// publish, checking the EFS blob cache, overwrite-off, progress markers/previews, result and mail.
import t from 'tap';
import { existsSync, statSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { blenderCommand, blenderSkip, makeScene, readPng } from './helpers/scenes.js';
import { runWorkerProcess } from './fakes/batch/aws-env.js';
import { startWorkerHost } from './fakes/batch/worker-host.js';
import { prepareJob } from '../daemon/src/batch/prepare.js';
import { jobKeys, type FrameMarker, type JobResult } from '../daemon/src/batch/layout.js';
import { probeBlend } from '../daemon/src/render/blender.js';
import type { Manifest } from '../daemon/src/project/manifest.js';

t.test(
  'worker copy → render → publish against s3rver, a folder as EFS and real Blender',
  { skip: blenderSkip, timeout: 115_000 },
  async (t) => {
    const dir = t.testdir({});
    const projectDir = path.join(dir, 'project');
    const blend = await makeScene(projectDir, {
      frames: [1, 4],
      textures: [
        { path: 'textures/wood grain é.png' },
        { path: path.join(dir, 'outside', 'ext.png'), relative: false },
      ],
    });
    const { bucket, ses, efs, env: workerEnv } = await startWorkerHost(t, dir);
    const probe = await probeBlend(blenderCommand, blend);

    const prepare = (jobId: string) =>
      prepareJob({
        jobId,
        name: 'worker test',
        blendFile: blend,
        sourceBlendFile: blend,
        projectRoot: projectDir,
        dependencies: probe.dependencies,
        scene: probe.scene.name,
        frames: [1, 2, 3, 4],
        chunkSize: 2,
        filePattern: 'frame_####',
        fileExtension: '.png',
        device: 'cpu',
        market: 'spot',
        blenderVersion: '3.4.1',
        notify: { to: 'artist@example.com', from: 'farm@example.com' },
        bucket,
      });
    const prepared = await prepare('j_worker1');
    t.same(prepared.missing, [], 'every dependency was uploaded');

    // copy: blobs land in the EFS cache once and are hard-linked into the job folder.
    const copy = await runWorkerProcess(['copy'], workerEnv('j_worker1'));
    t.equal(copy.code, 0, 'copy exits 0', { output: copy.output });
    const jobDir = path.join(efs, 'jobs', 'j_worker1');
    const projectBlend = path.join(jobDir, 'project', 'scene.blend');
    t.ok(existsSync(projectBlend), 'the scene is in the job folder');
    t.ok(
      existsSync(path.join(jobDir, 'project', 'textures', 'wood grain é.png')),
      'a texture with spaces/non-ASCII',
    );
    const external = readdirSync(path.join(jobDir, 'project', '_external'), { recursive: true }).map(String);
    t.ok(
      external.some((f) => f.endsWith('ext.png')),
      'a file from outside the project is under _external/',
    );
    const manifest = await bucket.getJson<Manifest>(prepared.job.manifestKey);
    const blendEntry = manifest!.files['scene.blend']!;
    const cached = path.join(efs, 'cas', blendEntry.sha256.slice(0, 2), blendEntry.sha256);
    t.ok(existsSync(cached), 'the blob is in the EFS cache');
    t.equal(
      statSync(projectBlend).ino,
      statSync(cached).ino,
      'the job file is a hard link to the cached blob',
    );
    t.equal(statSync(cached).nlink, 2, 'one cache entry, one link in the job folder');
    t.match(copy.output, /3 files .*0 from the EFS cache, 3 downloaded/, 'first copy downloads everything');

    // A second job of the same project copies nothing from S3.
    await prepare('j_worker2');
    const copy2 = await runWorkerProcess(['copy'], workerEnv('j_worker2'));
    t.equal(copy2.code, 0, 'second copy exits 0', { output: copy2.output });
    t.match(
      copy2.output,
      /3 from the EFS cache, 0 downloaded, 0 bytes/,
      'second copy is served by the EFS cache',
    );

    // render: two array children in parallel.
    const [chunk0, chunk1] = await Promise.all([
      runWorkerProcess(
        ['render'],
        workerEnv('j_worker1', { AWS_BATCH_JOB_ARRAY_INDEX: '0', AWS_BATCH_JOB_ATTEMPT: '1' }),
      ),
      runWorkerProcess(
        ['render'],
        workerEnv('j_worker1', { AWS_BATCH_JOB_ARRAY_INDEX: '1', AWS_BATCH_JOB_ATTEMPT: '1' }),
      ),
    ]);
    t.equal(chunk0.code, 0, 'chunk 0 exits 0', { output: chunk0.output });
    t.equal(chunk1.code, 0, 'chunk 1 exits 0', { output: chunk1.output });
    const outputDir = path.join(jobDir, 'output');
    t.same(readdirSync(outputDir).sort(), [
      'frame_0001.png',
      'frame_0002.png',
      'frame_0003.png',
      'frame_0004.png',
    ]);
    const keys = jobKeys('j_worker1');
    for (const frame of [1, 2, 3, 4]) {
      const marker = await bucket.getJson<FrameMarker>(keys.frame(frame));
      t.equal(marker?.state, 'done', `frame ${frame} has a done marker`);
      t.equal(marker?.chunk, frame <= 2 ? 0 : 1, `frame ${frame} belongs to chunk ${frame <= 2 ? 0 : 1}`);
      t.equal(marker?.file, `frame_000${frame}.png`);
      t.equal(marker?.preview, keys.preview(frame));
      const previewFile = path.join(dir, `preview-${frame}.png`);
      await bucket.download(keys.preview(frame), previewFile);
      const png = await readPng(previewFile);
      t.ok(
        png.width <= 256 && png.height <= 256 && png.width > 0,
        `preview of frame ${frame} is a small valid PNG`,
      );
    }

    // A retried chunk (spot interruption) skips frames that exist: overwrite off.
    const before = statSync(path.join(outputDir, 'frame_0001.png')).mtimeMs;
    const retry = await runWorkerProcess(
      ['render'],
      workerEnv('j_worker1', { AWS_BATCH_JOB_ARRAY_INDEX: '0', AWS_BATCH_JOB_ATTEMPT: '2' }),
    );
    t.equal(retry.code, 0, 'retried chunk exits 0', { output: retry.output });
    t.match(retry.output, /chunk 0: 0 rendered, 2 already there, 0 failed/);
    t.equal(
      statSync(path.join(outputDir, 'frame_0001.png')).mtimeMs,
      before,
      'the finished frame was not re-rendered',
    );

    // publish: frames to S3, result.json, mail, the job folder removed (the cache stays).
    const publish = await runWorkerProcess(['publish'], workerEnv('j_worker1'));
    t.equal(publish.code, 0, 'publish exits 0', { output: publish.output });
    const outputs = (await bucket.list(keys.outputPrefix)).map((o) => o.key).sort();
    t.same(
      outputs,
      [1, 2, 3, 4].map((f) => keys.output(`frame_000${f}.png`)),
    );
    const downloaded = path.join(dir, 'published-0003.png');
    await bucket.download(keys.output('frame_0003.png'), downloaded);
    const frame = await readPng(downloaded);
    t.same([frame.width, frame.height], [64, 36], 'the published frame is the full render');
    const result = await bucket.getJson<JobResult>(keys.result);
    t.equal(result?.state, 'succeeded');
    t.same(
      result?.ok.map((o) => o.frame),
      [1, 2, 3, 4],
    );
    t.same(result?.failed, []);
    t.same(result?.missing, []);
    t.equal(ses.sent.length, 1, 'one mail');
    t.same(ses.sent[0]?.to, ['artist@example.com']);
    t.equal(ses.sent[0]?.from, 'farm@example.com');
    t.match(ses.sent[0]?.subject, /rendered \(4 frames\)/);
    t.match(ses.sent[0]?.body, /skyfarm download j_worker1/);
    t.equal(result?.mail?.messageId, ses.sent[0]?.messageId, 'the result records the mail');
    t.notOk(existsSync(jobDir), 'the working folder is removed after publish');
    t.ok(existsSync(cached), 'the EFS blob cache stays for the next job');

    // Publishing again (a retried publish) uploads nothing new and still succeeds.
    const again = await runWorkerProcess(['publish'], workerEnv('j_worker1'));
    t.equal(again.code, 0, 'a second publish exits 0', { output: again.output });
    t.equal(ses.sent.length, 1, 'a retried publish does not mail again');
  },
);
