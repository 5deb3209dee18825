// `skyfarm upload` and `skyfarm render` from the real CLI (built, in a child process) on a real
// multi-folder Blender project: the upload prints { files, missing, bytesTotal, bytesUploaded,
// manifest }, the second one sends nothing, --strict refuses with exit code 1; a local render uses the
// same upload and its log says what was remapped and what is missing.
import t from 'tap';
import { join } from 'node:path';
import { blenderCommand, blenderSkip } from './helpers/scenes.js';
import { makeProject } from './helpers/projects.js';
import { cliEnv, runCli } from './helpers/cli.js';
import { localAwsEnv, startS3Proxy, startS3rver } from './fakes/s3-proxy/proxy.js';

const BUCKET = 'skyfarm-cli-upload';

t.test('skyfarm upload to a bucket', { skip: blenderSkip, timeout: 90_000 }, async (t) => {
  const dir = t.testdir({});
  const project = await makeProject(join(dir, 'work'));
  const s3rver = await startS3rver(join(dir, 's3rver'), BUCKET);
  t.teardown(() => s3rver.close());
  const proxy = await startS3Proxy(s3rver.endpoint);
  t.teardown(() => proxy.close());
  const env = cliEnv(t, join(dir, 'home'), {
    ...localAwsEnv(proxy.endpoint),
    SKYFARM_BLENDER: blenderCommand,
  });

  const first = await runCli(['upload', project.blend, '--bucket', BUCKET, '--json'], { env, cwd: dir });
  t.equal(first.code, 0, `exit 0 (stderr: ${first.stderr.slice(-400)})`);
  const result = JSON.parse(first.stdout) as Record<string, unknown> & { bytesTotal: number };
  t.match(result, {
    files: 14,
    missing: [project.missing],
    bytesUploaded: result.bytesTotal,
    manifest: {
      key: /^manifests\/[0-9a-f]{64}\.json$/,
      blend: 'scenes/shot 01 é.blend',
      root: project.root,
      remaps: { [project.outside]: `_external${project.outside}` },
    },
  });
  t.ok(result.bytesTotal > 0);

  const second = await runCli(['upload', project.blend, '--bucket', BUCKET, '--json'], { env, cwd: dir });
  t.equal(second.code, 0);
  t.match(
    JSON.parse(second.stdout),
    { files: 14, bytesUploaded: 0, blobsUploaded: 0 },
    'nothing to send again',
  );

  const strict = await runCli(['upload', project.blend, '--bucket', BUCKET, '--strict', '--json'], { env });
  t.equal(strict.code, 1, '--strict with a missing file exits 1');
  t.match(JSON.parse(strict.stdout), { error: { code: 'MISSING_DEPENDENCIES', message: /missing\.png/ } });

  const usage = await runCli(['upload', project.blend, '--backend', 'aws', '--json'], { env });
  t.equal(usage.code, 1, 'the AWS backend needs a bucket');
  t.match(JSON.parse(usage.stdout), { error: { code: 'BAD_ARGUMENT', message: /--bucket/ } });
});

t.test(
  'skyfarm upload and render on the local backend',
  { skip: blenderSkip, timeout: 90_000 },
  async (t) => {
    const dir = t.testdir({});
    const project = await makeProject(join(dir, 'work'));
    const env = cliEnv(t, join(dir, 'home'), { SKYFARM_BLENDER: blenderCommand });

    const upload = await runCli(['upload', project.blend], { env, cwd: dir });
    t.equal(upload.code, 0, `exit 0 (stderr: ${upload.stderr.slice(-400)})`);
    t.match(upload.stdout, /uploaded scenes\/shot 01 é\.blend and 13 files/);
    t.match(upload.stdout, `outside the project: ${project.outside} → _external${project.outside}`);
    t.match(upload.stderr, /1 missing files:\n\s+.*missing\.png/);

    const render = await runCli(['render', project.blend, '--frames', '1', '--wait', '--json'], {
      env,
      cwd: dir,
    });
    t.equal(render.code, 0, `render exit 0 (stderr: ${render.stderr.slice(-400)})`);
    const job = JSON.parse(render.stdout) as { id: string; state: string; message: string };
    t.equal(job.state, 'done');
    const logs = await runCli(['logs', job.id], { env });
    const lines = logs.stdout.split('\n');
    t.ok(
      lines.some((l) => l.includes(`[skyfarm] remap ${project.outside} → _external${project.outside}`)),
      'the job log says which folder was remapped',
    );
    t.ok(
      lines.some((l) => l.startsWith(`SKYFARM_REMAP ${project.files.outside} -> `)),
      'Blender rewrote the path of the texture outside the project',
    );
    t.same(
      lines.filter((l) => l.startsWith('SKYFARM_MISSING')).map((l) => l.replace(/^.*\/project\//, '')),
      ['textures/missing.png'],
      'in the job folder only the texture missing all along is missing',
    );
  },
);
