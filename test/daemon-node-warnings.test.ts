// No Node warning reaches the user's terminal: a 12-frame local render with chunk size 1 (12 chunks
// queued for one render slot) made the daemon print "MaxListenersExceededWarning: Possible
// EventTarget memory leak detected. 11 abort listeners added to [AbortSignal]" (issue #15). The
// daemon in the foreground prints none, nor does `skyfarm render --wait`; a warning Node does emit
// in the daemon goes to its log, not raw on stderr.
import t from 'tap';
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { blenderSkip, makeScene } from './helpers/scenes.js';
import { cliEntry, cliEnv, runCli } from './helpers/cli.js';
import { until } from './helpers/until.js';
import { readDaemonInfo } from '../daemon/src/config/daemon-lock.js';

// Emits one warning in the daemon once it is up (daemon.json written), as the AWS SDK's Node.js
// version notice or a library's deprecation would.
const EMIT_ONCE_UP = `data:text/javascript,${encodeURIComponent(`
import { existsSync } from 'node:fs';
const timer = setInterval(() => {
  if (!existsSync(process.env.SKYFARM_HOME + '/daemon.json')) return;
  clearInterval(timer);
  process.emitWarning('a library said something', 'SkyfarmTestWarning');
}, 50);
timer.unref();
`)}`;

const NODE_WARNING = /\(node:\d+\)|MaxListenersExceededWarning|EventTarget memory leak/;

t.test('a 12-frame render with chunk size 1 prints no Node warning', { skip: blenderSkip }, async (t) => {
  const dir = t.testdir({});
  const home = join(dir, 'home');
  const env = cliEnv(t, home);
  const scene = await makeScene(dir, { frames: [1, 12], samples: 2, outputPath: '//out/w_####' });

  const daemon = spawn(process.execPath, [cliEntry, 'daemon'], {
    env: { ...env, NODE_OPTIONS: `${env['NODE_OPTIONS'] ?? ''} --import=${EMIT_ONCE_UP}`.trim() },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  daemon.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  daemon.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => daemon.once('exit', (code) => resolve(code)));
  t.teardown(() => void daemon.kill('SIGKILL'));
  await until(
    'the foreground daemon to start',
    () => readDaemonInfo(join(home, 'daemon.json'))?.pid === daemon.pid,
    60_000,
    50,
  );

  const render = await runCli(['render', scene, '--chunk-size', '1', '--wait'], {
    env,
    cwd: dir,
    timeoutMs: 400_000,
  });
  t.equal(render.code, 0, `the render succeeded (${render.stderr.slice(-300)})`);
  t.equal(readdirSync(join(dir, 'out')).filter((name) => name.endsWith('.png')).length, 12, '12 frames');
  t.notMatch(render.stderr + render.stdout, NODE_WARNING, 'skyfarm render printed no Node warning');

  daemon.kill('SIGTERM');
  t.equal(await exited, 0, 'the daemon stopped cleanly');
  const output = stdout + stderr;
  t.notMatch(output, /MaxListenersExceededWarning|EventTarget memory leak/, 'no abort-listener warning');
  t.notMatch(stderr, /\(node:\d+\)/, "the daemon's stderr carries no Node warning");
  const logged = stdout.split('\n').filter((line) => line.includes('SkyfarmTestWarning'));
  t.equal(logged.length, 1, 'the warning Node did emit is one line of the log');
  t.match(
    JSON.parse(logged[0] ?? '{}'),
    {
      level: 40,
      warning: 'SkyfarmTestWarning',
      msg: /a library said something/,
    },
    'at warn level, with its name and message',
  );
});
