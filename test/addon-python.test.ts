// The add-on's bpy-free Python (WebSocket client, codec, job table, frame specs, state dir,
// submission, daemon connection) tested with plain python3 unittest, partly against the real
// daemon built in dist/ (npm test builds it first).
import t from 'tap';
import { existsSync } from 'node:fs';
import { addonTests, cliEntry, run, tail } from '../blender-addon/tests/harness.js';

const suites: Array<[string, string]> = [
  ['test_protocol_vectors', 'codec against the shared protocol vectors'],
  ['test_wsclient', 'RFC 6455 client against a misbehaving raw server'],
  ['test_framespec', 'frame spec parsing and inline errors'],
  ['test_state', 'job table reducer'],
  ['test_cost', 'cost line of a job: spend, projection, budget, unknown with the permission'],
  ['test_paths', 'state dir discovery like the daemon'],
  ['test_submission', 'render.submit params from scene facts'],
  ['test_upload_view', 'upload progress line and bar, missing files, Strict'],
  ['test_stdlib_only', 'standard library imports only, bpy-free core'],
  ['test_session_protocol', 'newer/garbled protocol from a fake daemon'],
  ['test_daemon_connection', 'connection against the real daemon: auth, fragmentation, restarts'],
];

t.ok(existsSync(cliEntry), `the daemon is built (${cliEntry})`);

for (const [suite, description] of suites) {
  t.test(`${suite}: ${description}`, async (t) => {
    const result = await run('python3', ['-m', 'unittest', '-v', suite], {
      cwd: addonTests,
      env: { ...process.env, PYTHONDONTWRITEBYTECODE: '1' },
      timeoutMs: 300_000,
    });
    t.equal(result.code, 0, 'unittest exits 0', { output: tail(result) });
    const ran = /^Ran (\d+) tests? in/m.exec(result.stderr);
    t.ok(ran && Number(ran[1]) > 0, `ran tests (${ran?.[1] ?? 0})`);
    t.match(result.stderr, /^OK$/m, 'unittest says OK', { output: tail(result) });
    t.notMatch(result.stderr, /skipped/, 'nothing skipped');
  });
}
