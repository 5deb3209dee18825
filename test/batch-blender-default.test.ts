// The farm renders in the artist's Blender: without --blender-version an AWS job takes the worker
// image of the Blender here (its release, else its series), and a .blend saved by a newer Blender
// than the chosen image is refused before anything is uploaded, naming both versions and the
// `skyfarm images build` command. On the fake farm (fake ECR listing the images, the real worker
// with real Blender).
import t from 'tap';
import { execFile, spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import type { Job } from '../protocol/generated/protocol.js';
import { jobKeys, type WorkerJobDocument } from '../daemon/src/batch/layout.js';
import { renderAndWait, runSkyfarm, startFarm } from './fakes/batch/farm.js';
import { blenderCommand, blenderSkip, blenderVersion, makeScene } from './helpers/scenes.js';

const execFileAsync = promisify(execFile);
const series = blenderVersion?.split('.').slice(0, 2).join('.') ?? '';

t.test(
  'without --blender-version: the image of the Blender here, by its series',
  { skip: blenderSkip, timeout: 115_000 },
  async (t) => {
    // The default 4.2.3 and the series tag `skyfarm images build --blender-version 5.2` gives.
    const farm = await startFarm(t, { images: ['4.2.3', series] });
    await farm.startDaemon();
    const scene = await makeScene(path.join(farm.dir, 'project'), { frames: [1, 2] });
    const output = path.join(farm.dir, 'out');
    const run = await renderAndWait(farm, scene, output);
    t.equal(run.code, 0, 'exit code 0', { stderr: run.stderr.slice(-3000) });
    const job = JSON.parse(run.stdout) as Job;
    t.equal(job.state, 'done');
    t.same(readdirSync(output).sort(), ['frame_0001.png', 'frame_0002.png'], 'frames rendered on the farm');
    const doc = await farm.bucket.getJson<WorkerJobDocument>(jobKeys(job.id).job);
    t.equal(doc?.blenderVersion, series, `job.json: Blender ${series}, the series of ${blenderVersion} here`);
    const renderJob = [...farm.batch.jobs.values()].find((j) => j.jobName === `skyfarm-${job.id}-render`);
    t.match(renderJob?.definition.image, new RegExp(`:${series.replace('.', '\\.')}$`), 'in its image');
    const logs = await runSkyfarm(['logs', job.id], farm.stateDir, farm.dir);
    t.match(
      logs.stdout,
      `the farm renders with Blender ${series} (Blender ${blenderVersion} renders in the farm's ${series} image`,
      'the job log says which Blender and why',
    );
  },
);

/** The newest Blender on this machine (the one under test, or another test/blenders/setup.sh installs). */
function newestBlender(): { command: string; version: number[] } | null {
  let best: { command: string; version: number[] } | null = null;
  for (const command of [blenderCommand, 'blender-trixie', 'blender-sid']) {
    const run = spawnSync(command, ['--version'], { encoding: 'utf8', timeout: 60_000 });
    const match = run.status === 0 ? /^Blender (\d+)\.(\d+)/m.exec(run.stdout) : null;
    if (!match) continue;
    const version = [Number(match[1]), Number(match[2])];
    if (
      !best ||
      version[0]! - best.version[0]! > 0 ||
      (version[0] === best.version[0] && version[1]! > best.version[1]!)
    )
      best = { command, version };
  }
  return best;
}

const newest = blenderSkip ? null : newestBlender();
const newerThanImage =
  newest && (newest.version[0]! > 4 || (newest.version[0] === 4 && newest.version[1]! > 2));

t.test(
  'a file newer than the chosen image is refused before upload',
  {
    skip:
      blenderSkip ||
      (newerThanImage ? false : 'no Blender newer than 4.2 here to save the file (test/blenders/setup.sh)'),
    timeout: 115_000,
  },
  async (t) => {
    const farm = await startFarm(t, { images: ['4.2.3'] });
    await farm.startDaemon();
    const folder = path.join(farm.dir, 'project');
    mkdirSync(folder);
    const file = path.join(folder, 'new.blend');
    await execFileAsync(newest!.command, [
      '-b',
      '--factory-startup',
      '--python-expr',
      `import bpy; bpy.ops.wm.save_as_mainfile(filepath=${JSON.stringify(file)})`,
    ]);
    const saved = newest!.version.join('.');
    const output = path.join(farm.dir, 'out');

    const asked = await renderAndWait(farm, file, output, ['--blender-version', '4.2']);
    t.equal(asked.code, 1, '--blender-version 4.2: exit code 1');
    const refusal = (run: { stdout: string }) =>
      (JSON.parse(run.stdout) as { error: { code: string; message: string } }).error;
    t.equal(refusal(asked).code, 'BLEND_TOO_NEW');
    t.match(
      refusal(asked).message,
      `${file} was saved by Blender ${saved}; the farm would render it with Blender 4.2.3 ` +
        `(--blender-version 4.2), which cannot open it. Build an image for it with ` +
        `\`skyfarm images build --blender-version ${saved}\`, then render with --blender-version ${saved}.`,
      'names both versions and the build command',
    );

    // Without --blender-version on a farm with no image of that series: the default, refused too.
    const byDefault = await renderAndWait(farm, file, output);
    t.equal(byDefault.code, 1, 'by default: exit code 1');
    t.match(
      refusal(byDefault).message,
      `${file} was saved by Blender ${saved}; the farm would render it with Blender 4.2.3,`,
    );
    t.match(refusal(byDefault).message, `skyfarm images build --blender-version ${saved}`);

    // Once the farm has an image of that series, the hint says to use it.
    farm.ecr.push('skyfarm/worker', `${saved}.0`);
    const restarted = await farm.startDaemon(path.join(farm.dir, 'home2')); // a fresh image listing
    const withImage = await runSkyfarm(
      ['render', file, '--backend', 'aws', '--blender-version', '4.2', '--wait'],
      restarted.paths.root,
      farm.dir,
    );
    t.equal(withImage.code, 1);
    t.match(withImage.stderr, `Render with --blender-version ${saved}.0 (the farm has its image).`);

    t.same(await farm.bucket.list(''), [], 'nothing was uploaded');
    t.equal(farm.batch.calls.filter((c) => c.operation === 'submitjob').length, 0, 'nothing was submitted');
  },
);
