// `skyfarm render shot.blend --backend aws --split 4` end to end (issue #17): the fake Batch runs the
// real worker stages with real Blender; four array children render a run of the frame's samples
// each, the child of the last part merges them, and the merged frame lands in the output folder under
// the scene's name. It is the single render of the same samples up to float rounding (so its mean
// absolute difference from the scene's single render is no larger than a render with another seed's:
// the criterion; in 4.2/4.3, whose default pattern parts cannot reproduce, each part is a band
// of rows with every sample, and the bands put together are the single render as well) and clearly
// less noisy than one part's share of samples alone.
import t from 'tap';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { findBlender } from '../daemon/src/render/blender.js';
import { blenderSkip } from './helpers/scenes.js';
import {
  makeNoisyScene,
  meanAbsoluteDifference,
  readPixels,
  renderVariants,
  splitKind,
} from './helpers/split-scenes.js';
import { recordUpdates, runSkyfarm, startFarm } from './fakes/batch/farm.js';
import type { Job } from '../protocol/generated/protocol.js';

/** As split-merge.test.ts: the same render up to float rounding. */
const SAME_RENDER = 1e-3;

t.test('a frame split into 4 parts on the farm', { skip: blenderSkip, timeout: 280_000 }, async (t) => {
  const farm = await startFarm(t, { maxRunning: 2 });
  const daemon = await farm.startDaemon();
  const { updates } = await recordUpdates(t, daemon);
  const project = path.join(farm.dir, 'project');
  const scene = await makeNoisyScene(path.join(project, 'shot.blend'), {
    samples: 16,
    seed: 0,
    outputPath: '//render/shot_####',
  });
  const output = path.join(farm.dir, 'out');
  // The CLI waits longer than renderAndWait's default: four parts, a merge and a loaded machine.
  const run = await runSkyfarm(
    [
      'render',
      scene,
      '--backend',
      'aws',
      '--frames',
      '1',
      '--split',
      '4',
      '--output',
      output,
      '--wait',
      '--json',
    ],
    farm.stateDir,
    farm.dir,
    200_000,
  );
  t.equal(run.code, 0, 'exit code 0', { stderr: run.stderr.slice(-3000) });
  const job = JSON.parse(run.stdout) as Job;
  t.match(job, { state: 'done', framesDone: 1, framesTotal: 1, framesFailed: 0 });
  t.same(readdirSync(output), ['shot_0001.exr'], 'the merged frame, named as the scene says');
  // While parts rendered, the progress said how far the frame was.
  const progress = run.stderr.match(/frame 1: \d\/4 parts · \d+\/16 samples/g) ?? [];
  t.ok(progress.length > 0, `progress counts parts and samples (${[...new Set(progress)].join(', ')})`);
  // While parts rendered, Blender's last-frame preview was the merge so far.
  const soFar = updates.filter((u) => u.state === 'rendering' && u.lastFrame);
  t.ok(soFar.length > 0, 'a preview of the parts merged so far arrived while rendering');
  t.match(soFar.at(-1)?.lastFrame, /1\.png$/, "it is frame 1's");

  const render = farm.batch.calls.find(
    (c) => c.operation === 'submitjob' && String(c.input['jobName']).endsWith('-render'),
  );
  t.same(render?.input['arrayProperties'], { size: 4 }, 'one array child per part');

  // Each part's log: `skyfarm logs JOB --chunk K` (child K renders part K+1 of frame 1).
  const logs = await runSkyfarm(['logs', job.id, '--chunk', '2', '--json'], farm.stateDir, farm.dir);
  t.equal(logs.code, 0, 'logs --chunk exits 0', { stderr: logs.stderr });
  const lines = JSON.parse(logs.stdout) as string[];
  t.ok(
    lines.some((l) => /part 3 of 4/.test(l)),
    'child 2 rendered part 3 of 4',
  );
  const kind = splitKind((await findBlender()).version);
  t.ok(
    lines.some((l) =>
      (kind === 'band' ? /^SKYFARM_PART 1 2 16 16 0 0 32-48\/64$/ : /^SKYFARM_PART 1 2 4 16 /).test(l),
    ),
    kind === 'band' ? 'with every sample of rows 32–47 of 64' : 'with its 4 of the 16 samples',
  );

  // The child that finished the frame's last part merged it (in the job's Blender), exactly one.
  let mergedBy = 0;
  for (const child of [0, 1, 2, 3]) {
    const childLog = await runSkyfarm(
      ['logs', job.id, '--chunk', String(child), '--json'],
      farm.stateDir,
      farm.dir,
    );
    if (
      (JSON.parse(childLog.stdout) as string[]).some((l) =>
        (kind === 'band'
          ? /frame 1: merged 4 parts \(bands of 16\+16\+16\+16 rows, 16 samples each\)/
          : /frame 1: merged 4 parts \(4\+4\+4\+4 samples\)/
        ).test(l),
      )
    )
      mergedBy += 1;
  }
  t.equal(mergedBy, 1, 'one render child merged the frame from its 4 parts');

  // Comparisons, rendered here by Blender itself: single renders of all 16 samples with two seeds,
  // and one of 4 samples (a part's share), compared with the other seed's render, which holds none of
  // their samples.
  const variant = (name: string, samples: number, seed: number) => ({
    samples,
    seed,
    path: path.join(farm.dir, 'compare', `${name}.exr`),
  });
  const variants = [variant('single-a', 16, 0), variant('single-b', 16, 7), variant('share', 4, 3)];
  await renderVariants(scene, variants);
  const files = [path.join(output, 'shot_0001.exr'), ...variants.map((v) => v.path)];
  const [merged, a, b, share] = await readPixels(files);
  t.ok(merged && a && b && share, 'Blender read the four images');
  if (!merged || !a || !b || !share) return;
  t.ok(merged.float, 'the merged frame is a float EXR, as the scene says');
  const seeds = meanAbsoluteDifference(a, b);
  const splitVsSingle = meanAbsoluteDifference(merged, a);
  const splitVsOther = meanAbsoluteDifference(merged, b);
  const shareVsOther = meanAbsoluteDifference(share, b);
  t.comment(
    `parts by ${kind}: mean |Δ|: single vs single ${seeds.toFixed(5)}, split vs single ` +
      `${splitVsSingle.toExponential(2)} (${(splitVsSingle / seeds).toExponential(2)}×); vs the other seed: ` +
      `split ${splitVsOther.toFixed(5)}, one part's samples ${shareVsOther.toFixed(5)}`,
  );
  t.ok(splitVsSingle <= seeds * SAME_RENDER, 'the split frame is the single render');
  t.ok(shareVsOther > splitVsOther * 1.3, "one part's samples alone are clearly noisier");
});
