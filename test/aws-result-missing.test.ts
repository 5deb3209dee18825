// An AWS job whose publish stage succeeded but whose jobs/<id>/result.json is absent fails saying what
// is missing (the key), what is known (the frames that did arrive) and where to look (`skyfarm logs
// JOB`, the publish job's CloudWatch stream), instead of "publish failed: failed". On the fake farm:
// the workers reach S3 through a proxy that answers the PUT of result.json with 200 and drops it.
import t from 'tap';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import type { Job } from '../protocol/generated/protocol.js';
import { renderAndWait, runSkyfarm, startFarm } from './fakes/batch/farm.js';
import { blenderSkip, makeScene } from './helpers/scenes.js';

/** Forwards to `target()` (s3rver), except a PUT of a job's result.json: answered 200, not stored. */
async function resultDroppingProxy(target: () => string) {
  const dropped: string[] = [];
  const server = http.createServer((req, res) => {
    const url = req.url ?? '/';
    if (req.method === 'PUT' && /\/jobs\/[^/]+\/result\.json(\?|$)/.test(url)) {
      req.resume();
      req.on('end', () => {
        dropped.push(url);
        res.writeHead(200, { ETag: '"d41d8cd98f00b204e9800998ecf8427e"', 'Content-Length': '0' });
        res.end();
      });
      return;
    }
    const upstream = new URL(target());
    const forward = http.request(
      { host: upstream.hostname, port: upstream.port, method: req.method, path: url, headers: req.headers },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    forward.on('error', () => res.destroy());
    req.pipe(forward);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    dropped,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

t.test(
  'publish succeeded without result.json: the job says what is missing and where to look',
  { skip: blenderSkip, timeout: 115_000 },
  async (t) => {
    let s3 = '';
    const proxy = await resultDroppingProxy(() => s3);
    t.teardown(() => proxy.close());
    const farm = await startFarm(t, { workerEnv: { AWS_ENDPOINT_URL_S3: proxy.endpoint } });
    s3 = farm.s3.endpoint;
    await farm.startDaemon();
    const scene = await makeScene(path.join(farm.dir, 'project'), { frames: [1, 2] });
    const output = path.join(farm.dir, 'out');

    const run = await renderAndWait(farm, scene, output);
    t.equal(run.code, 2, 'the job failed: exit code 2');
    const job = JSON.parse(run.stdout) as Job;
    t.equal(proxy.dropped.length, 1, 'publish wrote result.json once, and it was lost');
    const key = `jobs/${job.id}/result.json`;
    t.equal(job.state, 'failed', 'failed');
    t.same(job.stages, { upload: 'done', copy: 'done', render: 'done', publish: 'failed' }, 'publish failed');
    t.equal(job.error?.code, 'AWS_ERROR', 'error code AWS_ERROR');
    const frames = readdirSync(output).filter((name) => !name.startsWith('.'));
    t.same(frames.sort(), ['frame_0001.png', 'frame_0002.png'], 'the published frames did arrive');
    t.match(
      job.message,
      `publish succeeded but its result is missing: s3://${farm.s3.bucket}/${key} does not exist, so which ` +
        `frames were published is unknown (2 of 2 frames are in ${output}). See \`skyfarm logs ${job.id}\` ` +
        "and the publish job's log (CloudWatch /skyfarm/skyfarm, stream ",
      'names the missing key, what arrived, and where to look',
    );
    t.notMatch(job.message, /publish failed: failed/, 'not the old bare message');
    const logs = await runSkyfarm(['logs', job.id], farm.stateDir, farm.dir);
    t.match(
      logs.stdout,
      `publish succeeded but its result is missing: s3://${farm.s3.bucket}/${key}`,
      'in the job log',
    );
  },
);
