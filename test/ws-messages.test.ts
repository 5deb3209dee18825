// Bad messages on an authenticated connection get typed errors and never break the daemon.
import t from 'tap';
import { WebSocket } from 'ws';
import { startTestDaemon } from './helpers/daemon.js';
import type { RunningDaemon } from '../daemon/src/daemon.js';

interface Conn {
  socket: WebSocket;
  next(): Promise<Record<string, unknown>>;
  send(value: unknown): void;
  closed: Promise<number>;
}

async function open(daemon: RunningDaemon): Promise<Conn> {
  const socket = new WebSocket(`ws://127.0.0.1:${daemon.port}/ws`, {
    headers: { Authorization: `Bearer ${daemon.token}` },
  });
  const inbox: Array<Record<string, unknown>> = [];
  const waiters: Array<(m: Record<string, unknown>) => void> = [];
  socket.on('message', (data) => {
    const message = JSON.parse(data.toString()) as Record<string, unknown>;
    const waiter = waiters.shift();
    if (waiter) waiter(message);
    else inbox.push(message);
  });
  const closed = new Promise<number>((resolve) => socket.once('close', (code) => resolve(code)));
  await new Promise((resolve, reject) => {
    socket.once('open', resolve);
    socket.once('error', reject);
  });
  return {
    socket,
    closed,
    send: (value) => socket.send(typeof value === 'string' ? value : JSON.stringify(value)),
    next: () =>
      new Promise((resolve, reject) => {
        const queued = inbox.shift();
        if (queued) return resolve(queued);
        const timer = setTimeout(() => reject(new Error('no message within 5 s')), 5000);
        waiters.push((m) => {
          clearTimeout(timer);
          resolve(m);
        });
      }),
  };
}

const hello = { type: 'hello', protocol: 1, client: { name: 'test', version: '1' } };

t.test('handshake rules', async (t) => {
  const daemon = await startTestDaemon(t);
  const conn = await open(daemon);
  conn.send({ type: 'request', id: 'early', method: 'jobs.list', params: {} });
  t.match(
    await conn.next(),
    { type: 'error', id: 'early', code: 'HANDSHAKE_REQUIRED' },
    'requests need hello first',
  );
  conn.send(hello);
  t.match(await conn.next(), { type: 'welcome', protocol: 1, daemon: { name: 'skyfarm' } });
  conn.send({ type: 'request', id: 'a', method: 'jobs.list' });
  t.match(await conn.next(), { type: 'reply', id: 'a', method: 'jobs.list', result: { jobs: [] } });
  conn.socket.close();

  const newer = await open(daemon);
  newer.send({ ...hello, protocol: 2, client: { name: 'blender-addon', version: '9.0' } });
  const mismatch = await newer.next();
  t.match(mismatch, { type: 'error', code: 'PROTOCOL_MISMATCH' });
  t.match(String(mismatch['message']), /speaks protocol 2.*update skyfarm/, 'tells which side to update');
  t.equal(await newer.closed, 1002, 'and closes the connection');
});

t.test('malformed, unknown, wrongly typed and oversized messages get typed errors', async (t) => {
  const daemon = await startTestDaemon(t);
  const conn = await open(daemon);
  conn.send(hello);
  await conn.next();
  const cases: Array<[unknown, string]> = [
    ['{"type":', 'BAD_MESSAGE'],
    ['[]', 'BAD_MESSAGE'],
    [{ type: 'launch' }, 'UNKNOWN_TYPE'],
    [{ type: 'request', id: '1', method: 'nope.nope', params: {} }, 'UNKNOWN_METHOD'],
    [{ type: 'request', id: '2', method: 'jobs.get', params: { jobId: 5 } }, 'INVALID_MESSAGE'],
    [{ type: 'request', id: '3', method: 'jobs.get', params: { jobId: 'j_missing' } }, 'JOB_NOT_FOUND'],
    [{ type: 'request', id: '4', method: 'jobs.cancel', params: { jobId: 'j_missing' } }, 'JOB_NOT_FOUND'],
    [
      { type: 'request', id: '5', method: 'render.submit', params: { blendFile: '/nonexistent/x.blend' } },
      'FILE_NOT_FOUND',
    ],
    [
      JSON.stringify({ type: 'request', id: '6', method: 'jobs.list', params: {} }) + ' '.repeat(1_100_000),
      'MESSAGE_TOO_LARGE',
    ],
  ];
  for (const [message, code] of cases) {
    conn.send(message);
    const reply = await conn.next();
    t.equal(reply['type'], 'error', `${code}: an error reply`);
    t.equal(reply['code'], code, `${code}: the right code`);
    t.type(reply['message'], 'string');
  }
  conn.socket.send(Buffer.from([1, 2, 3]), { binary: true });
  t.match(await conn.next(), { type: 'error', code: 'BAD_MESSAGE' }, 'binary frames are refused');
  conn.send({ type: 'request', id: 'still', method: 'jobs.list', params: {} });
  t.match(await conn.next(), { type: 'reply', id: 'still' }, 'the connection still works afterwards');
});

t.test('a flood of messages is rate limited without hurting other clients', async (t) => {
  const daemon = await startTestDaemon(t);
  const flooder = await open(daemon);
  flooder.send(hello);
  await flooder.next();
  const other = await open(daemon);
  other.send(hello);
  await other.next();
  for (let i = 0; i < 600; i++)
    flooder.send({ type: 'request', id: `f${i}`, method: 'jobs.list', params: {} });
  let limited = 0;
  for (let i = 0; i < 600; i++) {
    const reply = await flooder.next();
    if (reply['code'] === 'RATE_LIMITED') limited++;
  }
  t.ok(limited > 0, `some of 600 burst messages were rate limited (${limited})`);
  other.send({ type: 'request', id: 'calm', method: 'jobs.list', params: {} });
  t.match(await other.next(), { type: 'reply', id: 'calm' }, 'another client is still served');
});
