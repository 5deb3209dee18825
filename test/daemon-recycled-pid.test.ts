// daemon.json and daemon.lock left by a dead daemon name a pid the system has given to an unrelated
// program, and a port another program now listens on: no skyfarm command takes them for a daemon —
// nothing is signalled, the token is not sent to that port — and `daemon start` replaces them (issue #15).
import t from 'tap';
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { cliEnv, runCli } from './helpers/cli.js';
import { processAlive } from '../daemon/src/config/daemon-lock.js';

t.test('a stale daemon.json naming a reused pid and port is not a running daemon', async (t) => {
  const home = join(t.testdir({}), 'home');
  mkdirSync(home, { mode: 0o700 });
  const env = cliEnv(t, home);

  // The unrelated program: holds the dead daemon's pid; another one listens on its old port.
  const unrelated = spawn('sleep', ['600'], { stdio: 'ignore' });
  t.teardown(() => void unrelated.kill('SIGKILL'));
  const pid = unrelated.pid!;
  const contacts: Socket[] = [];
  const server = createServer((socket) => {
    contacts.push(socket);
    socket.destroy();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => void server.close());
  const port = (server.address() as { port: number }).port;
  writeFileSync(join(home, 'daemon.json'), JSON.stringify({ pid, port, version: '0.1.0' }) + '\n', {
    mode: 0o600,
  });
  writeFileSync(join(home, 'daemon.lock'), String(pid), { mode: 0o600 }); // an older skyfarm's lock
  writeFileSync(join(home, 'token'), 'a'.repeat(64) + '\n', { mode: 0o600 });

  const status = await runCli(['daemon', 'status', '--json'], { env });
  t.equal(status.code, 4, 'daemon status exits 4');
  t.match(JSON.parse(status.stdout), { running: false }, 'and says not running');

  const jobs = await runCli(['jobs'], { env });
  t.equal(jobs.code, 4, 'a command needing the daemon exits 4');
  t.match(
    jobs.stderr,
    new RegExp(`no skyfarm daemon is running .*pid ${pid}, is no longer running`),
    'saying the daemon of daemon.json is gone',
  );

  const stop = await runCli(['daemon', 'stop', '--json'], { env });
  t.match(JSON.parse(stop.stdout), { stopped: false }, 'daemon stop finds nothing to stop');
  t.ok(processAlive(pid), 'the unrelated program was not signalled');
  t.equal(contacts.length, 0, "nothing connected to the other program's port (no token sent there)");

  const start = await runCli(['daemon', 'start', '--json'], { env });
  t.equal(start.code, 0, `daemon start succeeds (stderr: ${start.stderr})`);
  const started = JSON.parse(start.stdout) as { pid: number; port: number };
  t.not(started.pid, pid, 'a new daemon runs');
  t.not(started.port, port, 'on a port of its own');
  const info = JSON.parse(readFileSync(join(home, 'daemon.json'), 'utf8')) as { pid: number };
  t.equal(info.pid, started.pid, "daemon.json is the new daemon's");
  const replaced = readFileSync(join(home, 'daemon.log'), 'utf8')
    .split('\n')
    .filter((line) => /ended without stopping cleanly/.test(line));
  t.equal(replaced.length, 1, 'the replacement is said once in the log');

  const listed = await runCli(['jobs', '--json'], { env });
  t.equal(listed.code, 0, 'commands reach the new daemon');
  const stopped = await runCli(['daemon', 'stop', '--json'], { env });
  t.match(JSON.parse(stopped.stdout), { stopped: true, pid: started.pid }, 'stop stops the new daemon');
  t.ok(processAlive(pid), 'and still not the unrelated program');
  t.equal(contacts.length, 0, 'which was never contacted');
});
