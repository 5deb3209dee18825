// The skyfarm Farm panel in real Blender's GUI under Xvfb, installed from the built zip, against a real
// daemon whose CloudFormation endpoint is the stateful fake: the panel asks for the stack by itself,
// a failing create shows live events and then the failing resource's reason, Recreate creates the
// stack and the AWS backend becomes available. Screenshots go to .tap/artifacts/addon-farm-gui/.
import t from 'tap';
import { existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { makeScene } from './helpers/scenes.js';
import { startTestDaemon } from './helpers/daemon.js';
import { fakeAwsEnv, startFake } from './fakes/cloudformation/harness.js';
import {
  artifactsDir,
  blenderEnv,
  blenderVersion,
  buildAddonZip,
  runBlenderScript,
  startXvfb,
  tail,
} from '../blender-addon/tests/harness.js';
import { checkCapture } from '../blender-addon/tests/screen.js';

t.comment(`using ${blenderVersion()}`);

const REASON =
  'Resource handler returned message: "You have reached the maximum number of file systems (Service: Efs, Status Code: 403)"';

t.test('the Farm panel follows a failed create and a recreate, screenshots of each', async (t) => {
  // Slow steps so the screenshot catches the deploy while its events stream in.
  const fake = await startFake(t, { stepMs: 40 });
  fakeAwsEnv(t, fake);
  fake.failOnCreate('FileSystem', REASON);
  const dir = t.testdir({ project: {} });
  const daemon = await startTestDaemon(t, { stateDir: path.join(dir, 'home') });
  const blendFile = await makeScene(path.join(dir, 'project'), { name: 'shot.blend', frames: [1, 3] });
  const addonZip = path.join(dir, 'skyfarm-addon.zip');
  const built = await buildAddonZip(addonZip);
  t.equal(built.code, 0, 'the add-on zip builds', { output: tail(built) });
  const failedMarker = path.join(dir, 'failed');
  const retryMarker = path.join(dir, 'retry');

  // The harness's half: once Blender has seen the failure, the fault is cleared for the recreate.
  let stop = false;
  const clearer = (async () => {
    while (!stop && !existsSync(failedMarker)) await sleep(50);
    if (stop) return;
    t.equal(fake.stack('skyfarm')?.status, 'ROLLBACK_COMPLETE', 'the fake rolled the failed create back');
    fake.clearFaults();
    writeFileSync(retryMarker, 'retry\n');
  })();

  const display = await startXvfb(t);
  const artifacts = artifactsDir('addon-farm-gui');
  const result = await runBlenderScript(t, {
    script: 'gui_farm.py',
    background: false,
    display,
    blendFile,
    args: {
      addonZip,
      artifactsDir: artifacts,
      failedMarker,
      retryMarker,
      reason: REASON,
      timeout: 300,
      scrollPixels: 640,
    },
    env: blenderEnv(t, { DISPLAY: display, SKYFARM_HOME: daemon.paths.root }),
    timeoutMs: 6 * 60_000,
  });
  stop = true;
  await clearer;
  t.match(result.stdout, /installed .*skyfarm-addon\.zip/, 'the add-on came from the built zip');
  t.notMatch(
    `${result.stdout}\n${result.stderr}`,
    /Traceback|Error in|rna_uiItem/,
    'no Python errors while drawing',
    {
      output: tail(result),
    },
  );
  t.equal(fake.stack('skyfarm')?.status, 'CREATE_COMPLETE', 'Recreate created the stack');
  t.equal(fake.calls.filter((c) => c.action === 'CreateStack').length, 2, 'one CreateStack per press');
  t.equal(
    fake.calls.filter((c) => c.action === 'DeleteStack').length,
    1,
    'the failed stack was deleted first',
  );
  t.same(
    result.captures.map((capture) => capture.name),
    [
      'farm-not-deployed',
      'farm-deploying',
      'farm-failed',
      'farm-ready',
      'farm-submit-aws',
      'farm-update-dialog',
    ],
    'every screenshot was taken',
  );
  for (const capture of result.captures) {
    checkCapture(t, capture);
    t.comment(`screenshot: ${capture.png}`);
  }
  const recreated = /recreated in ([\d.]+) s with (\d+) events/.exec(result.stdout);
  const tick = /slowest timer tick: ([\d.]+) ms/.exec(result.stdout);
  t.comment(`recreate ${recreated?.[1]} s, ${recreated?.[2]} events; slowest timer tick ${tick?.[1]} ms`);
});
