// Split frames when parts go wrong (issue #17), on the fake Batch with the real worker and Blender:
// a part whose spot instance is reclaimed is retried like any chunk and its frame still merges from
// the parts the first attempts finished; a part that fails (an application error, not retried) fails
// its frame with the part's reason while the other frame is merged, published and downloaded.
import t from 'tap';
import { chmodSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { blenderCommand, blenderSkip } from './helpers/scenes.js';
import { makeNoisyScene } from './helpers/split-scenes.js';
import { runSkyfarm, startFarm } from './fakes/batch/farm.js';
import type { Job } from '../protocol/generated/protocol.js';

t.test(
  'a reclaimed part is retried, a failed part fails only its frame',
  { skip: blenderSkip, timeout: 280_000 },
  async (t) => {
    // Outside the test folder: startFarm makes that folder afresh.
    const dir = mkdtempSync(path.join(tmpdir(), 'skyfarm-split-failures-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    // Blender that refuses part 2 of frame 2 (child 3), as a scene error would.
    const failing = path.join(dir, 'blender-failing-part');
    writeFileSync(
      failing,
      `#!/bin/sh\ncase "$*" in *'"frames":[2]'*'"part":1'*) echo "Error: test fails frame 2 part 2" >&2; exit 1;; esac\n` +
        `exec ${JSON.stringify(blenderCommand)} "$@"\n`,
    );
    chmodSync(failing, 0o755);
    const farm = await startFarm(t, { workerEnv: { SKYFARM_BLENDER: failing } });
    await farm.startDaemon();
    // Child 1 renders part 2 of frame 1: its instance is reclaimed once it has started on it.
    farm.batch.interrupt({
      jobName: /-render$/,
      arrayIndex: 1,
      afterLine: /^SKYFARM_PART 1 1 /,
      instanceId: 'i-0spot0000000000017',
    });
    const scene = await makeNoisyScene(path.join(farm.dir, 'project', 'shot.blend'), {
      samples: 8,
      outputPath: '//render/shot_####',
    });
    const output = path.join(farm.dir, 'out');
    const run = await runSkyfarm(
      [
        'render',
        scene,
        '--backend',
        'aws',
        '--frames',
        '1-2',
        '--split',
        '2',
        '--output',
        output,
        '--wait',
        '--json',
      ],
      farm.stateDir,
      farm.dir,
      240_000,
    );
    t.equal(run.code, 2, 'exit code 2: a frame failed', { stderr: run.stderr.slice(-3000) });
    const job = JSON.parse(run.stdout) as Job;
    t.same(job.failedFrames, [2], 'frame 2 failed');
    t.equal(job.framesDone, 1, 'frame 1 is done');
    t.match(
      job.message,
      /part 2 of 2 failed.*test fails frame 2 part 2/,
      "the message gives the part's reason",
    );
    t.same(readdirSync(output), ['shot_0001.exr'], 'frame 1, merged, in the output folder');

    const render = farm.batch.byName(`skyfarm-${job.id}-render`)[0]!;
    t.same(
      render.children?.map((c) => c.status),
      ['SUCCEEDED', 'SUCCEEDED', 'SUCCEEDED', 'FAILED'],
      'the reclaimed part succeeded on its retry; the failing part failed',
    );
    t.equal(render.children?.[1]?.attempts.length, 2, 'the reclaimed part was retried (spot interruption)');
    t.equal(render.children?.[3]?.attempts.length, 1, 'the failing part was not (application error)');

    const logs = await runSkyfarm(['logs', job.id, '--chunk', '3', '--json'], farm.stateDir, farm.dir);
    t.equal(logs.code, 0, 'logs --chunk 3 exits 0', { stderr: logs.stderr });
    t.ok(
      (JSON.parse(logs.stdout) as string[]).some((l) => /test fails frame 2 part 2/.test(l)),
      "the failed part's log shows Blender's error",
    );
  },
);
