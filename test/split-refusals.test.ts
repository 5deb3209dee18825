// What `--split` refuses before anything is uploaded (issue #17), each with its own error code and
// a message saying what to change: the local backend (one machine gains nothing), an engine that
// cannot split (Workbench, Eevee), a compositor the merge cannot reproduce (one that writes files
// itself), more array children than AWS Batch allows, more parts than samples (or, where this Blender
// splits a frame into bands of rows: 4.2/4.3, more parts than rows). Nothing is submitted to Batch for
// any of them.
import t from 'tap';
import path from 'node:path';
import { blenderSkip } from './helpers/scenes.js';
import { makeNoisyScene, splitKind } from './helpers/split-scenes.js';
import { findBlender } from '../daemon/src/render/blender.js';
import { runSkyfarm, startFarm } from './fakes/batch/farm.js';

t.test('--split refusals', { skip: blenderSkip, timeout: 110_000 }, async (t) => {
  const farm = await startFarm(t);
  await farm.startDaemon();
  const project = path.join(farm.dir, 'project');
  const cycles = await makeNoisyScene(path.join(project, 'cycles.blend'), { samples: 16 });
  const workbench = await makeNoisyScene(path.join(project, 'workbench.blend'), {
    engine: 'BLENDER_WORKBENCH',
  });
  const writer = await makeNoisyScene(path.join(project, 'writer.blend'), { compositor: 'file-output' });

  const refuse = async (what: string, args: string[], code: string, says: RegExp) => {
    const run = await runSkyfarm(['render', ...args, '--json'], farm.stateDir, farm.dir);
    t.equal(run.code, 1, `${what}: exit code 1`, { stderr: run.stderr.slice(-2000) });
    const out = JSON.parse(run.stdout || '{}') as { error?: { code: string; message: string } };
    t.equal(out.error?.code, code, `${what}: ${code}`);
    t.match(out.error?.message, says, `${what}: says why`);
  };
  await refuse(
    'local backend',
    [cycles, '--split', '4'],
    'SPLIT_LOCAL',
    /needs the AWS backend.*gaining nothing/,
  );
  await refuse(
    'Workbench',
    [workbench, '--backend', 'aws', '--split', '4'],
    'SPLIT_ENGINE',
    /BLENDER_WORKBENCH.*only Cycles/,
  );
  await refuse('compositor', [writer, '--backend', 'aws', '--split', '4'], 'SPLIT_COMPOSITOR', /File Output/);
  await refuse(
    'too many children',
    [cycles, '--backend', 'aws', '--frames', '1-700', '--split', '16'],
    'SPLIT_TOO_MANY',
    /700 frames.*16 parts = 11200 array children; AWS Batch allows 10000/,
  );
  if (splitKind((await findBlender()).version) === 'band') {
    await refuse(
      'more parts than rows',
      [cycles, '--backend', 'aws', '--split', '65'],
      'SPLIT_TOO_MANY',
      /--split 65 is more parts than scene "Scene" has rows \(64\)/,
    );
  } else {
    await refuse(
      'more parts than samples',
      [cycles, '--backend', 'aws', '--split', '17'],
      'SPLIT_TOO_MANY',
      /--split 17 is more parts than scene "Scene" has samples \(16\)/,
    );
  }
  t.same(
    farm.batch.calls.filter((c) => c.operation === 'submitjob'),
    [],
    'nothing was submitted to Batch',
  );
});
