// Who may connect, and what leaks. Complements test/ws-auth.test.ts: browser origins of every kind
// (including `Origin: null` from sandboxed frames and file:// pages), DNS-rebinding Host variants,
// tokens presented the wrong way, the listening socket as the kernel sees it, a state dir or token
// file that other users can read (the daemon refuses to start, saying why), and no secret — the
// token, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN — in daemon.log, job logs, the state dir, CLI
// output or any WebSocket message, with the daemon logging at debug level through a real job and
// bad-auth attempts.
import t from 'tap';
import net from 'node:net';
import { chmodSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { WebSocket } from 'ws';
import { startTestDaemon } from './helpers/daemon.js';
import { cliEnv, runCli } from './helpers/cli.js';
import { blenderSkip, makeScene } from './helpers/scenes.js';
import { tokenMatches } from '../daemon/src/config/token.js';

/** Sends a raw HTTP/1.1 upgrade request (any headers, also duplicates) and returns the status line. */
function rawUpgrade(
  port: number,
  headerLines: string[],
  path = '/ws',
  afterUpgrade?: Buffer,
): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    let text = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no answer for ${headerLines.join(' | ')}`));
    }, 10_000);
    socket.once('connect', () => {
      socket.write(
        [
          `GET ${path} HTTP/1.1`,
          'Upgrade: websocket',
          'Connection: Upgrade',
          `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}`,
          'Sec-WebSocket-Version: 13',
          ...headerLines,
          '',
          '',
        ].join('\r\n'),
      );
    });
    socket.on('data', (chunk: Buffer) => {
      text += chunk.toString('latin1');
      const status = /^HTTP\/1\.1 (\d+)/.exec(text);
      // 101: the upgrade went through; anything else: the answer up to the end of the body we got.
      if (status && (status[1] === '101' || text.includes('\r\n\r\n'))) {
        clearTimeout(timer);
        if (status[1] === '101' && afterUpgrade) socket.write(afterUpgrade);
        setTimeout(() => {
          socket.destroy();
          resolve({ status: Number(status[1]), text });
        }, 50);
      }
    });
    socket.once('error', (error) => {
      // A refusal ends with the daemon dropping the connection: a reset after the answer is fine.
      clearTimeout(timer);
      const status = /^HTTP\/1\.1 (\d+)/.exec(text);
      if (status) resolve({ status: Number(status[1]), text });
      else reject(error);
    });
    socket.once('close', () => {
      clearTimeout(timer);
      const status = /^HTTP\/1\.1 (\d+)/.exec(text);
      resolve({ status: status ? Number(status[1]) : 0, text });
    });
  });
}

t.test('browsers, rebinding Host names and misplaced tokens are refused', async (t) => {
  const daemon = await startTestDaemon(t);
  const port = daemon.port;
  const host = `Host: 127.0.0.1:${port}`;
  const auth = `Authorization: Bearer ${daemon.token}`;
  t.equal((await rawUpgrade(port, [host, auth])).status, 101, 'the token on a loopback Host connects');

  const origins = [
    'null',
    '',
    'file://',
    `http://localhost:${port}`,
    `http://127.0.0.1:${port}`,
    'https://evil.example',
    'chrome-extension://abcdefghijklmnop',
    'moz-extension://1234',
    'vscode-webview://x',
  ];
  for (const origin of origins) {
    const answer = await rawUpgrade(port, [host, auth, `Origin: ${origin}`]);
    t.equal(answer.status, 403, `Origin "${origin}" is refused with the right token`);
    t.match(answer.text, /FORBIDDEN_ORIGIN/);
  }
  const twoOrigins = await rawUpgrade(port, [host, auth, 'Origin: null', 'Origin: null']);
  t.not(twoOrigins.status, 101, `two Origin headers are refused (${twoOrigins.status})`);

  const hosts = [
    `localhost.:${port}`,
    `attacker.example:${port}`,
    `127.0.0.1.nip.io:${port}`,
    `localhost.attacker.example:${port}`,
    `[::ffff:127.0.0.1]:${port}`,
    `0.0.0.0:${port}`,
    `127.1:${port}`,
    `2130706433:${port}`,
    `localhost:${port}@attacker.example`,
    `attacker.example#@localhost:${port}`,
    `localhost:${port} attacker.example`,
    '',
  ];
  for (const value of hosts) {
    const answer = await rawUpgrade(port, [`Host: ${value}`, auth]);
    t.equal(
      answer.status === 403 || answer.status === 400,
      true,
      `Host "${value}" is refused (${answer.status})`,
    );
  }
  t.not((await rawUpgrade(port, [auth])).status, 101, 'no Host header at all is refused');
  // (Node keeps the first of two Host headers; a browser sends exactly one.)
  const twoHosts = await rawUpgrade(port, [`Host: attacker.example:${port}`, host, auth]);
  t.not(twoHosts.status, 101, `two Host headers, the first foreign, are refused (${twoHosts.status})`);
  t.equal(
    (await rawUpgrade(port, [`Host: LOCALHOST:${port}`, auth])).status,
    101,
    'Host is case-insensitive',
  );

  const tokens: Array<[string, string[], string]> = [
    ['none', [host], '/ws'],
    ['in the query string', [host], `/ws?token=${daemon.token}`],
    ['as a WebSocket subprotocol', [host, `Sec-WebSocket-Protocol: ${daemon.token}`], '/ws'],
    [
      'as Basic auth',
      [host, `Authorization: Basic ${Buffer.from(`x:${daemon.token}`).toString('base64')}`],
      '/ws',
    ],
    ['bare, without "Bearer"', [host, `Authorization: ${daemon.token}`], '/ws'],
    ['empty Bearer', [host, 'Authorization: Bearer '], '/ws'],
    ['a prefix of the token', [host, `Authorization: Bearer ${daemon.token.slice(0, -1)}`], '/ws'],
    ['the token plus a character', [host, `Authorization: Bearer ${daemon.token}x`], '/ws'],
    ['the token with a trailing word', [host, `Authorization: Bearer ${daemon.token} x`], '/ws'],
    ['in a cookie', [host, `Cookie: token=${daemon.token}`], '/ws'],
    ['64 KB of garbage', [host, `Authorization: Bearer ${'a'.repeat(64 * 1024)}`], '/ws'],
  ];
  for (const [what, headers, path] of tokens) {
    const answer = await rawUpgrade(port, headers, path);
    t.ok(answer.status === 401 || answer.status === 431, `token ${what}: refused (${answer.status})`);
    t.notMatch(answer.text, daemon.token, `token ${what}: the answer does not echo the token`);
  }

  // The compare hashes both sides first: different lengths neither throw nor short-circuit.
  t.equal(tokenMatches(daemon.token, daemon.token), true);
  for (const other of [
    '',
    'x',
    daemon.token.slice(1),
    daemon.token + daemon.token,
    daemon.token.toUpperCase(),
  ]) {
    t.equal(tokenMatches(other, daemon.token), other === daemon.token, `tokenMatches(${other.length} chars)`);
  }

  // After all of that the daemon still serves the right client.
  const ok = new WebSocket(`ws://127.0.0.1:${port}/ws`, {
    headers: { Authorization: `Bearer ${daemon.token}` },
  });
  await new Promise((resolve, reject) => {
    ok.once('open', resolve);
    ok.once('error', reject);
  });
  ok.close();
});

/** Listening TCP sockets of the kernel on `port`: local addresses, from /proc/net/tcp and tcp6. */
function listeners(port: number): string[] {
  const found: string[] = [];
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text = '';
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const [, local, , state] = line.trim().split(/\s+/);
      if (!local || state !== '0A') continue; // 0A = LISTEN
      const [address, hexPort] = local.split(':');
      if (parseInt(hexPort ?? '', 16) === port)
        found.push(`${file.endsWith('6') ? 'tcp6' : 'tcp'} ${address}`);
    }
  }
  return found;
}

t.test(
  'the daemon listens on 127.0.0.1 only, whatever the environment says',
  { skip: process.platform !== 'linux' && 'needs /proc/net' },
  async (t) => {
    const dir = t.testdir({});
    const home = join(dir, 'home');
    const env = cliEnv(t, home, {
      HOST: '0.0.0.0',
      HOSTNAME: '0.0.0.0',
      SKYFARM_HOST: '0.0.0.0',
      FASTIFY_ADDRESS: '0.0.0.0',
    });
    const started = await runCli(['daemon', 'start', '--json'], { env });
    t.equal(started.code, 0, started.stderr);
    const { port } = JSON.parse(started.stdout) as { port: number };
    t.same(listeners(port), ['tcp 0100007F'], `one listening socket, on 127.0.0.1:${port}`);
  },
);

t.test('a state dir or token file other users can read: the daemon refuses to start', async (t) => {
  const dir = t.testdir({});

  const fresh = join(dir, 'fresh', 'home');
  const env = cliEnv(t, fresh);
  process.umask(0o022);
  t.equal((await runCli(['daemon', 'start', '--json'], { env })).code, 0, 'starts with a new state dir');
  t.equal(statSync(fresh).mode & 0o777, 0o700, 'created 0700 despite umask 022');
  t.equal(statSync(join(fresh, 'token')).mode & 0o777, 0o600, 'token created 0600');
  for (const name of readdirSync(fresh)) {
    const mode = statSync(join(fresh, name)).mode & 0o777;
    if (statSync(join(fresh, name)).isDirectory())
      t.equal(mode & 0o077, 0, `${name}/ is private (${mode.toString(8)})`);
  }
  t.equal((await runCli(['daemon', 'stop'], { env })).code, 0);

  for (const mode of [0o755, 0o750, 0o701]) {
    chmodSync(fresh, mode);
    const foreground = await runCli(['daemon'], { env, timeoutMs: 30_000 });
    t.equal(foreground.code, 1, `state dir ${mode.toString(8)}: \`skyfarm daemon\` exits 1`);
    t.match(foreground.stderr, /accessible by other users.*chmod 700/, 'and says why and what to do');
  }
  const start = await runCli(['daemon', 'start', '--json'], { env, timeoutMs: 30_000 });
  t.equal(start.code, 1, '`skyfarm daemon start` fails too');
  t.match(start.stdout, /accessible by other users/, 'with the same reason');
  chmodSync(fresh, 0o700);

  for (const mode of [0o644, 0o640, 0o604, 0o660]) {
    chmodSync(join(fresh, 'token'), mode);
    const foreground = await runCli(['daemon'], { env, timeoutMs: 30_000 });
    t.equal(foreground.code, 1, `token ${mode.toString(8)}: the daemon refuses to start`);
    t.match(
      foreground.stderr,
      /token file .* readable by other users.*chmod 600/,
      'and says why and what to do',
    );
    const detached = await runCli(['daemon', 'start'], { env, timeoutMs: 30_000 });
    t.not(detached.code, 0, `token ${mode.toString(8)}: \`skyfarm daemon start\` fails`);
    t.match(detached.stderr, /readable by other users/, 'and passes the reason on');
  }
  chmodSync(join(fresh, 'token'), 0o600);
  t.equal((await runCli(['daemon', 'start'], { env })).code, 0, 'starts again once fixed');
});

t.test('no secret in logs, files or messages', { skip: blenderSkip }, async (t) => {
  const dir = t.testdir({});
  const scene = await makeScene(join(dir, 'project'), { frames: [1, 2], outputPath: '//out/s_####' });
  const home = join(dir, 'home');
  // Markers that would stand out anywhere they leaked.
  const secret = `SECRETKEY${randomBytes(12).toString('hex')}`;
  const session = `SESSIONTOKEN${randomBytes(12).toString('hex')}`;
  const env = cliEnv(t, home, {
    SKYFARM_LOG_LEVEL: 'debug',
    AWS_ACCESS_KEY_ID: 'AKIASKYFARMTESTKEY01',
    AWS_SECRET_ACCESS_KEY: secret,
    AWS_SESSION_TOKEN: session,
    AWS_REGION: 'us-east-1',
    AWS_ENDPOINT_URL: 'http://127.0.0.1:9',
    AWS_EC2_METADATA_DISABLED: 'true',
    AWS_CONFIG_FILE: join(dir, 'no-aws-config'),
    AWS_SHARED_CREDENTIALS_FILE: join(dir, 'no-aws-credentials'),
  });
  const outputs: string[] = [];
  const started = await runCli(['daemon', 'start', '--json'], { env });
  t.equal(started.code, 0, started.stderr);
  outputs.push(started.stdout, started.stderr);
  const token = readFileSync(join(home, 'token'), 'utf8').trim();
  const { port } = JSON.parse(started.stdout) as { port: number };

  // Bad-auth attempts, some carrying the real token in the wrong place.
  const attempts: string[][] = [
    [`Host: 127.0.0.1:${port}`, `Authorization: Bearer ${token}x`],
    [`Host: 127.0.0.1:${port}`, `Authorization: Bearer ${token}`, 'Origin: null'],
    [`Host: evil.example:${port}`, `Authorization: Bearer ${token}`],
    [`Host: 127.0.0.1:${port}`, `Authorization: Basic ${Buffer.from(`u:${token}`).toString('base64')}`],
  ];
  for (const headers of attempts) outputs.push((await rawUpgrade(port, headers)).text);
  outputs.push(
    (await rawUpgrade(port, [`Host: 127.0.0.1:${port}`], `/ws?token=${token}&secret=${secret}`)).text,
  );
  // An authenticated connection (token in the URL too) that breaks the protocol: logged at debug.
  const badUtf8 = Buffer.from([0x81, 0x82, 0, 0, 0, 0, 0xc3, 0x28]); // masked text frame, invalid UTF-8
  outputs.push(
    (
      await rawUpgrade(
        port,
        [`Host: 127.0.0.1:${port}`, `Authorization: Bearer ${token}`],
        `/ws?token=${token}`,
        badUtf8,
      )
    ).text,
  );

  // A client that records every message the daemon sends, through a real job.
  const messages: string[] = [];
  const socket = new WebSocket(`ws://127.0.0.1:${port}/ws`, {
    headers: { Authorization: `Bearer ${token}` },
  });
  socket.on('message', (data) => messages.push(data.toString()));
  await new Promise((resolve, reject) => {
    socket.once('open', resolve);
    socket.once('error', reject);
  });
  let nextId = 0;
  const request = async (method: string, params: Record<string, unknown>) => {
    const id = `r${nextId++}`;
    const before = messages.length;
    socket.send(JSON.stringify({ type: 'request', id, method, params }));
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      const answer = messages.slice(before).find((m) => m.includes(`"id":"${id}"`));
      if (answer) return JSON.parse(answer) as { type: string; result?: Record<string, unknown> };
      await sleep(50);
    }
    throw new Error(`no answer to ${method}`);
  };
  socket.send(JSON.stringify({ type: 'hello', protocol: 1, client: { name: 'leak-test', version: '1' } }));
  await request('daemon.info', {});
  const submitted = await request('render.submit', { blendFile: scene, frames: '1-2' });
  t.equal(submitted.type, 'reply', 'the job is accepted');
  const jobId = (submitted.result?.['job'] as { id: string }).id;
  // The AWS code paths, with the credentials in the daemon's environment, failing on a closed port.
  await request('render.submit', {
    blendFile: scene,
    frames: '1',
    backend: 'aws',
    aws: { bucket: 'skyfarm-leak-test' },
  });
  await request('project.upload', { blendFile: scene, backend: 'aws', bucket: 'skyfarm-leak-test' });
  await request('stack.status', {});
  let state = '';
  const deadline = Date.now() + 120_000;
  while (!['done', 'failed', 'canceled'].includes(state) && Date.now() < deadline) {
    state = ((await request('jobs.get', { jobId })).result?.['job'] as { state: string }).state;
    await sleep(300);
  }
  t.equal(state, 'done', 'the job rendered');
  await request('jobs.logs', { jobId, tail: 100000 });
  await request('jobs.list', {});
  socket.close();

  for (const args of [
    ['status', jobId, '--json'],
    ['logs', jobId],
    ['jobs'],
    ['daemon', 'status', '--json'],
  ]) {
    const result = await runCli(args, { env });
    outputs.push(result.stdout, result.stderr);
  }
  t.equal((await runCli(['daemon', 'stop'], { env })).code, 0);

  // Everything the daemon wrote in its state dir (daemon.log, job logs, SQLite, store metadata), except
  // the token file itself and the project blobs it stored.
  const files: string[] = [];
  const walk = (folder: string) => {
    for (const entry of readdirSync(folder, { withFileTypes: true })) {
      const path = join(folder, entry.name);
      if (entry.isDirectory()) {
        if (path !== join(home, 'store', 'cas')) walk(path);
      } else if (path !== join(home, 'token')) files.push(path);
    }
  };
  walk(home);
  const daemonLog = readFileSync(join(home, 'daemon.log'), 'utf8');
  t.ok(
    daemonLog.split('\n').some((line) => line.includes('"level":20')),
    'daemon.log has debug lines',
  );
  t.ok(
    files.some((f) => f.endsWith(`${jobId}.log`)),
    'the job log is among the files checked',
  );
  t.ok(messages.length > 10, `${messages.length} WebSocket messages recorded`);
  for (const [name, value] of [
    ['the token', token],
    ['AWS_SECRET_ACCESS_KEY', secret],
    ['AWS_SESSION_TOKEN', session],
  ] as const) {
    const inFiles = files.filter((file) => readFileSync(file).includes(value));
    t.same(inFiles, [], `${name} is in no file of the state dir (${files.length} files)`);
    t.same(
      messages.filter((m) => m.includes(value)),
      [],
      `${name} is in no WebSocket message`,
    );
    t.same(
      outputs.filter((o) => o.includes(value)),
      [],
      `${name} is in no CLI output or HTTP answer`,
    );
  }
});

t.test('a token file created by a hostile umask is still private', async (t) => {
  // umask 0 would make a plain writeFileSync 0666; the daemon asks for 0600 explicitly.
  const dir = t.testdir({});
  const previous = process.umask(0);
  try {
    const daemon = await startTestDaemon(t, { stateDir: join(dir, 'home') });
    t.equal(statSync(daemon.paths.root).mode & 0o777, 0o700);
    t.equal(statSync(daemon.paths.token).mode & 0o777, 0o600);
    t.equal(statSync(join(daemon.paths.root, 'daemon.json')).mode & 0o077, 0, 'daemon.json is private too');
  } finally {
    process.umask(previous);
  }
  // A state dir that exists already and is private but holds an empty token: a new one is made, 0600.
  const existing = join(dir, 'existing');
  mkdirSync(existing, { mode: 0o700 });
  writeFileSync(join(existing, 'token'), '', { mode: 0o600 });
  const daemon = await startTestDaemon(t, { stateDir: existing });
  t.ok(daemon.token.length >= 32, 'a fresh token replaced the empty one');
  t.equal(statSync(daemon.paths.token).mode & 0o777, 0o600);
});
