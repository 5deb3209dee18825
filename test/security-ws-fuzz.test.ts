// Hostile WebSocket input on an authenticated connection. A seeded fuzzer sends thousands of
// malformed, truncated, oversized, deeply nested, wrongly typed and out-of-order messages (also
// random bytes, fragmented frames, invalid UTF-8, protocol violations and floods of small frames)
// to an in-process daemon. Each message gets a typed error (or a reply) or the connection is closed;
// another client is served throughout; the heap stays flat over the rounds; a client that does not
// read cannot make the daemon buffer without bound; a burst of requests does not fork a process each.
//
// Reproduce a failure with the seed it prints: SKYFARM_FUZZ_SEED=<seed> npx tap test/security-ws-fuzz.test.ts
import t, { type Test } from 'tap';
import pino from 'pino';
import { Writable } from 'node:stream';
import net from 'node:net';
import v8 from 'node:v8';
import vm from 'node:vm';
import { randomBytes } from 'node:crypto';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ERROR_CODES, type Job } from '../protocol/generated/protocol.js';
import { startTestDaemon, connectTestClient } from './helpers/daemon.js';
import { blenderCommand, blenderSkip } from './helpers/scenes.js';
import { seededRandom, type SeededRandom } from './helpers/seeded-random.js';
import { startDaemon, type RunningDaemon } from '../daemon/src/daemon.js';
import type { DaemonClient } from '../daemon/src/client/daemon-client.js';

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

const SEED = Number(process.env['SKYFARM_FUZZ_SEED'] ?? Math.floor(Math.random() * 2 ** 31));
const MAX_FRAME = 4 * 1024 * 1024; // the daemon's WebSocket maxPayload (4 × LIMITS.maxMessageBytes)

// Safety net: nothing the fuzzer triggers may reach a real AWS endpoint.
const SAFE_AWS_ENV = {
  AWS_ENDPOINT_URL: 'http://127.0.0.1:9',
  AWS_EC2_METADATA_DISABLED: 'true',
  AWS_ACCESS_KEY_ID: 'fuzz',
  AWS_SECRET_ACCESS_KEY: 'fuzz',
  AWS_REGION: 'us-east-1',
  AWS_CONFIG_FILE: '/nonexistent/skyfarm-fuzz/config',
  AWS_SHARED_CREDENTIALS_FILE: '/nonexistent/skyfarm-fuzz/credentials',
};

type Rng = SeededRandom;

// ---------------------------------------------------------------------------------------------
// A raw RFC 6455 client: the fuzzer needs frames no well-behaved library would send.

const OP = { cont: 0, text: 1, binary: 2, close: 8, ping: 9, pong: 10 } as const;

function frame(
  opcode: number,
  payload: Buffer,
  opts: { fin?: boolean; mask?: boolean; rsv?: number } = {},
): Buffer {
  const fin = opts.fin ?? true;
  const mask = opts.mask ?? true;
  const head: number[] = [(fin ? 0x80 : 0) | ((opts.rsv ?? 0) << 4) | opcode];
  const len = payload.length;
  const maskBit = mask ? 0x80 : 0;
  if (len < 126) head.push(maskBit | len);
  else if (len < 65536) head.push(maskBit | 126, len >> 8, len & 255);
  else {
    head.push(maskBit | 127, 0, 0, 0, 0);
    head.push((len >>> 24) & 255, (len >>> 16) & 255, (len >>> 8) & 255, len & 255);
  }
  if (!mask) return Buffer.concat([Buffer.from(head), payload]);
  const key = randomBytes(4);
  const body = Buffer.allocUnsafe(len);
  for (let i = 0; i < len; i++) body[i] = payload[i]! ^ key[i & 3]!;
  return Buffer.concat([Buffer.from(head), key, body]);
}

class RawClient {
  readonly messages: string[] = [];
  closeCode: number | null = null;
  ended = false;
  readonly closed: Promise<void>;
  private buf: Buffer = Buffer.alloc(0);
  private wake: () => void = () => undefined;

  private constructor(readonly socket: net.Socket) {
    this.closed = new Promise((resolve) =>
      socket.once('close', () => {
        this.ended = true;
        this.wake();
        resolve();
      }),
    );
    socket.on('error', () => undefined);
  }

  static async connect(port: number, token: string): Promise<RawClient> {
    const socket = net.connect(port, '127.0.0.1');
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    socket.write(
      `GET /ws HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n` +
        `Authorization: Bearer ${token}\r\n\r\n`,
    );
    let head = Buffer.alloc(0);
    const rest = await new Promise<Buffer>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no upgrade answer in 10 s')), 10_000);
      const onData = (chunk: Buffer) => {
        head = Buffer.concat([head, chunk]);
        const end = head.indexOf('\r\n\r\n');
        if (end < 0) return;
        clearTimeout(timer);
        socket.off('data', onData);
        const status = head.subarray(0, end).toString('latin1').split('\r\n')[0] ?? '';
        if (!/^HTTP\/1\.1 101 /.test(status)) reject(new Error(`upgrade refused: ${status}`));
        else resolve(head.subarray(end + 4));
      };
      socket.on('data', onData);
    });
    const client = new RawClient(socket);
    socket.on('data', (chunk: Buffer) => client.onData(chunk));
    if (rest.length) client.onData(rest);
    return client;
  }

  private onData(chunk: Buffer): void {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    while (this.buf.length >= 2) {
      const b0 = this.buf[0]!;
      const b1 = this.buf[1]!;
      let len = b1 & 0x7f;
      let offset = 2;
      if (len === 126) {
        if (this.buf.length < 4) return;
        len = this.buf.readUInt16BE(2);
        offset = 4;
      } else if (len === 127) {
        if (this.buf.length < 10) return;
        len = Number(this.buf.readBigUInt64BE(2));
        offset = 10;
      }
      if (this.buf.length < offset + len) return;
      const payload = this.buf.subarray(offset, offset + len);
      this.buf = this.buf.subarray(offset + len);
      const opcode = b0 & 0x0f;
      if (opcode === OP.text) this.messages.push(payload.toString('utf8'));
      else if (opcode === OP.close) {
        this.closeCode = payload.length >= 2 ? payload.readUInt16BE(0) : 1005;
        // Answer the closing handshake so the daemon can let go of the socket at once.
        if (!this.socket.destroyed) this.socket.end(frame(OP.close, payload.subarray(0, 2)));
      }
    }
    this.wake();
  }

  write(data: Buffer | Buffer[]): void {
    if (this.socket.destroyed || this.socket.writableEnded) return;
    for (const part of Array.isArray(data) ? data : [data]) this.socket.write(part);
  }

  text(value: string | Buffer): void {
    this.write(frame(OP.text, Buffer.isBuffer(value) ? value : Buffer.from(value)));
  }

  /** Resolves once `count` messages arrived or the connection ended; false on timeout. */
  async waitFor(count: number, timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (this.messages.length < count && !this.ended) {
      const left = deadline - Date.now();
      if (left <= 0) return false;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 200));
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    return true;
  }

  async waitClosed(timeoutMs: number): Promise<boolean> {
    return Promise.race([this.closed.then(() => true), sleep(timeoutMs, false, { ref: false })]);
  }

  destroy(): void {
    this.socket.destroy();
  }
}

// ---------------------------------------------------------------------------------------------
// Message generators. Valid requests only ever use methods that cannot reach AWS or start work.

const hello = { type: 'hello', protocol: 1, client: { name: 'fuzz', version: '1' } };

function randomJson(r: Rng, depth = 0): unknown {
  const kind = r.int(0, depth > 3 ? 4 : 6);
  switch (kind) {
    case 0:
      return null;
    case 1:
      return r.pick([true, false]);
    case 2:
      return r.pick([0, -1, 1.5, 2 ** 53 + 1, -(2 ** 63), 1e308, Number.MIN_VALUE, r.int(-1e9, 1e9)]);
    case 3:
      return randomString(r, r.int(0, 40));
    case 4:
      return r.pick(['', 'request', 'hello', 'jobs.list', '__proto__', 'constructor', '\u0000', '💥']);
    case 5:
      return Array.from({ length: r.int(0, 5) }, () => randomJson(r, depth + 1));
    default: {
      const value: Record<string, unknown> = {};
      for (let i = r.int(0, 5); i > 0; i--) {
        const key = r.pick([
          'type',
          'id',
          'method',
          'params',
          'protocol',
          'client',
          'jobId',
          randomString(r, 6),
        ]);
        value[key] = randomJson(r, depth + 1);
      }
      return value;
    }
  }
}

function randomString(r: Rng, length: number): string {
  let s = '';
  for (let i = 0; i < length; i++) {
    const c = r.int(0, 9);
    if (c < 6) s += String.fromCharCode(r.int(32, 126));
    else if (c < 7) s += String.fromCharCode(r.int(0, 31));
    else if (c < 8) s += String.fromCharCode(r.int(0x80, 0xd7ff));
    else s += r.pick(['"', '\\', '😀', '\u2028', '\ufeff']);
  }
  return s;
}

function validRequest(r: Rng, id: string): Record<string, unknown> {
  const jobId = r.pick(['j_000000000000', `j_${randomBytes(6).toString('hex')}`, 'nope', '../../etc/passwd']);
  return r.pick<Record<string, unknown>>([
    { type: 'request', id, method: 'jobs.list', params: {} },
    { type: 'request', id, method: 'jobs.list' },
    { type: 'request', id, method: 'jobs.get', params: { jobId } },
    { type: 'request', id, method: 'jobs.cancel', params: { jobId } },
    { type: 'request', id, method: 'jobs.logs', params: { jobId, tail: r.int(-5, 1e6) } },
    {
      type: 'request',
      id,
      method: 'render.submit',
      params: {
        blendFile: `/nonexistent/skyfarm-fuzz/${randomBytes(3).toString('hex')}.blend`,
        frames: '1-3',
      },
    },
  ]);
}

/** Replaces one field (at any depth) with a value of another type. */
function mutate(r: Rng, value: Record<string, unknown>): Record<string, unknown> {
  const copy = JSON.parse(JSON.stringify(value)) as Record<string, unknown>;
  let target: Record<string, unknown> = copy;
  const params = copy['params'];
  if (params && typeof params === 'object' && r.next() < 0.5) target = params as Record<string, unknown>;
  const keys = Object.keys(target);
  const choice = r.int(0, 3);
  if (choice === 0 || keys.length === 0) target[randomString(r, r.int(1, 8))] = randomJson(r);
  else if (choice === 1) delete target[r.pick(keys)];
  else target[r.pick(keys)] = randomJson(r);
  return copy;
}

const DEPTH = 100_000;
function deepNest(r: Rng): string {
  const arrays = '['.repeat(DEPTH) + ']'.repeat(DEPTH);
  const objects = '{"a":'.repeat(DEPTH) + '1' + '}'.repeat(DEPTH);
  const nested = r.pick([arrays, objects]);
  return r.pick([
    nested,
    `{"type":"request","id":"deep","method":"render.submit","params":{"blendFile":"/x.blend","dependencies":${nested}}}`,
    `{"type":"request","id":"deep","method":"jobs.get","params":${nested}}`,
    `{"type":"request","id":${nested},"method":"jobs.list"}`,
    `{"type":${nested}}`,
    `{"type":"hello","protocol":1,"client":${nested}}`,
  ]);
}

/** One message that must get exactly one answer: frames to send and what it is. */
function answerable(r: Rng, n: number): { kind: string; frames: Buffer[] } {
  const id = `m${n}`;
  const roll = r.next();
  let kind: string;
  let text: string | undefined;
  let frames: Buffer[] | undefined;
  if (roll < 0.14) {
    kind = 'random-json';
    text = JSON.stringify(randomJson(r));
  } else if (roll < 0.28) {
    kind = 'truncated';
    const whole = JSON.stringify(validRequest(r, id));
    text = whole.slice(0, r.int(0, whole.length - 1));
  } else if (roll < 0.46) {
    kind = 'wrong-type';
    text = JSON.stringify(keepProtocol(mutate(r, r.next() < 0.8 ? validRequest(r, id) : { ...hello })));
  } else if (roll < 0.54) {
    kind = 'out-of-order';
    text = JSON.stringify(
      r.pick<unknown>([
        { type: 'welcome', protocol: 1, minProtocol: 1, daemon: { name: 'skyfarm', version: '1' } },
        { type: 'reply', id, method: 'jobs.list', result: { jobs: [] } },
        { type: 'event', event: 'job.update', data: {} },
        { type: 'error', id, code: 'INTERNAL', message: 'x' },
        hello,
        { type: 'request', id, method: 'stack.deploy', params: 17 },
        { type: 'request', id, method: 'stack.destroy', params: 'now' },
        { type: 'request', id, method: 'jobs.download', params: [] },
      ]),
    );
  } else if (roll < 0.6) {
    kind = 'valid-request';
    text = JSON.stringify(validRequest(r, id));
  } else if (roll < 0.66) {
    kind = 'prototype-pollution';
    text = r.pick([
      `{"__proto__":{"polluted":"yes"},"type":"request","id":"${id}","method":"jobs.list","params":{}}`,
      `{"type":"request","id":"${id}","method":"jobs.get","params":{"jobId":"x","__proto__":{"polluted":"yes"}}}`,
      `{"type":"request","id":"${id}","method":"jobs.list","params":{"constructor":{"prototype":{"polluted":"yes"}}}}`,
    ]);
  } else if (roll < 0.72) {
    kind = 'long-strings';
    const big = randomString(r, r.int(65, 200_000));
    text = JSON.stringify(
      r.pick([
        { type: 'request', id: big, method: 'jobs.list', params: {} },
        { type: 'request', id, method: big, params: {} },
        { type: big },
        { type: 'request', id, method: 'jobs.get', params: { jobId: big } },
      ]),
    );
  } else if (roll < 0.76) {
    kind = 'numbers';
    text = r.pick([
      `{"type":"request","id":"${id}","method":"jobs.logs","params":{"jobId":"j_1","tail":1e999999}}`,
      `{"type":"hello","protocol":1.0000000000000002,"client":{"name":"x","version":"1"}}`,
      `{"type":"request","id":"${id}","method":"jobs.logs","params":{"jobId":"j_1","tail":${'9'.repeat(5000)}}}`,
      `{"type":"request","id":"${id}","method":"render.submit","params":{"blendFile":"/x.blend","chunkSize":1.0000000000000002}}`,
    ]);
  } else if (roll < 0.8) {
    kind = 'deeply-nested';
    text = deepNest(r);
  } else if (roll < 0.83) {
    kind = 'oversized';
    const size = r.int(1024 * 1024 + 1, MAX_FRAME - 1024);
    text = `{"type":"request","id":"${id}","method":"jobs.list","params":{},"pad":"${'x'.repeat(size)}"}`;
  } else if (roll < 0.88) {
    kind = 'random-text';
    text = randomString(r, r.int(0, 300));
  } else if (roll < 0.92) {
    kind = 'binary';
    frames = [frame(OP.binary, r.bytes(r.int(0, 2000)))];
  } else {
    // A message of any of the kinds above, fragmented, with pings between the fragments.
    kind = 'fragmented';
    const inner =
      r.next() < 0.5 ? JSON.stringify(validRequest(r, id)) : JSON.stringify(mutate(r, validRequest(r, id)));
    const data = Buffer.from(inner);
    const parts = Math.min(data.length, r.int(2, 60));
    frames = [];
    let at = 0;
    for (let i = 0; i < parts; i++) {
      const end =
        i === parts - 1
          ? data.length
          : Math.max(at, Math.min(data.length, at + r.int(0, (2 * data.length) / parts)));
      frames.push(frame(i === 0 ? OP.text : OP.cont, data.subarray(at, end), { fin: i === parts - 1 }));
      if (r.next() < 0.2) frames.push(frame(OP.ping, r.bytes(r.int(0, 125))));
      at = end;
    }
  }
  return { kind, frames: frames ?? [frame(OP.text, Buffer.from(text ?? ''))] };
}

/** Cases that must end with the daemon closing the connection (each on its own connection). */
function closing(r: Rng): Array<{ kind: string; frames: Buffer[] }> {
  const invalidUtf8 = Buffer.concat([
    Buffer.from('{"type":"'),
    r.pick([Buffer.from([0xc3, 0x28]), Buffer.from([0xff]), Buffer.from([0xed, 0xa0, 0x80])]),
    Buffer.from('"}'),
  ]);
  return [
    { kind: 'invalid-utf8', frames: [frame(OP.text, invalidUtf8)] },
    {
      kind: 'invalid-utf8-fragmented',
      frames: [
        frame(OP.text, invalidUtf8.subarray(0, 10), { fin: false }),
        frame(OP.cont, invalidUtf8.subarray(10)),
      ],
    },
    {
      kind: 'frame-over-max-payload',
      frames: [frame(OP.text, Buffer.alloc(MAX_FRAME + r.int(1, 1000), 0x20))],
    },
    { kind: 'continuation-without-start', frames: [frame(OP.cont, Buffer.from('{}'))] },
    {
      kind: 'new-message-inside-fragmented-one',
      frames: [frame(OP.text, Buffer.from('{"ty'), { fin: false }), frame(OP.text, Buffer.from('{}'))],
    },
    {
      kind: 'reserved-opcode',
      frames: [frame(r.pick([3, 4, 5, 6, 7, 11, 12, 13, 14, 15]), Buffer.from('{}'))],
    },
    { kind: 'unmasked-frame', frames: [frame(OP.text, Buffer.from(JSON.stringify(hello)), { mask: false })] },
    { kind: 'rsv-bits', frames: [frame(OP.text, Buffer.from('{}'), { rsv: r.int(1, 7) })] },
    { kind: 'control-frame-too-long', frames: [frame(OP.ping, r.bytes(r.int(126, 1000)))] },
    { kind: 'fragmented-control-frame', frames: [frame(OP.ping, Buffer.from('x'), { fin: false })] },
    {
      kind: 'too-many-fragments',
      frames: [
        frame(OP.text, Buffer.from('['), { fin: false }),
        Buffer.concat(Array.from({ length: 20_000 }, () => frame(OP.cont, Buffer.from(' '), { fin: false }))),
        frame(OP.cont, Buffer.from(']')),
      ],
    },
    {
      kind: 'protocol-mismatch',
      frames: [frame(OP.text, Buffer.from(JSON.stringify({ ...hello, protocol: r.int(2, 1e6) })))],
    },
    {
      kind: 'truncated-frame-then-eof',
      frames: [frame(OP.text, Buffer.from(JSON.stringify(hello))).subarray(0, r.int(1, 20))],
    },
  ];
}

// ---------------------------------------------------------------------------------------------

function checkAnswer(raw: string): string | null {
  let message: Record<string, unknown>;
  try {
    message = JSON.parse(raw) as Record<string, unknown>;
  } catch {
    return `not JSON: ${raw.slice(0, 100)}`;
  }
  if (message['type'] === 'reply' || message['type'] === 'welcome') return null;
  if (message['type'] !== 'error') return `unexpected message type ${String(message['type'])}`;
  if (typeof message['code'] !== 'string' || !(message['code'] in ERROR_CODES))
    return `error without a known code: ${raw.slice(0, 200)}`;
  if (message['code'] === 'INTERNAL') return `INTERNAL error: ${raw.slice(0, 300)}`;
  if (typeof message['message'] !== 'string') return 'error without a message';
  if (!(message['id'] === null || typeof message['id'] === 'string')) return 'error id of the wrong type';
  return null;
}

/** A second, well-behaved client asking jobs.list every 200 ms; records the slowest answer. */
function monitor(client: DaemonClient) {
  let stopped = false;
  let answered = 0;
  let failures = 0;
  let slowest = 0;
  const done = (async () => {
    while (!stopped) {
      const started = Date.now();
      try {
        await Promise.race([
          client.request('jobs.list', {}),
          sleep(15_000, undefined, { ref: false }).then(() => Promise.reject(new Error('no answer in 15 s'))),
        ]);
        answered++;
      } catch {
        failures++;
      }
      slowest = Math.max(slowest, Date.now() - started);
      await sleep(200);
    }
  })();
  return {
    stop: async () => {
      stopped = true;
      await done;
      return { answered, failures, slowest };
    },
  };
}

function heap(): { heapUsed: number; arrayBuffers: number } {
  gc();
  gc();
  const usage = process.memoryUsage();
  return { heapUsed: usage.heapUsed, arrayBuffers: usage.arrayBuffers };
}

/** An in-process daemon whose log lines are counted by level; error-level lines are kept. */
async function startLoggedDaemon(t: Test) {
  const logged = { lines: 0, warn: 0, errors: [] as string[] };
  const stream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString().split('\n').filter(Boolean)) {
        logged.lines++;
        const level = (JSON.parse(line) as { level: number }).level;
        if (level === 40) logged.warn++;
        if (level >= 50) logged.errors.push(line.slice(0, 500));
      }
      callback();
    },
  });
  const daemon = await startDaemon({
    stateDir: join(t.testdir({}), 'home'),
    port: 0,
    env: { ...process.env, ...SAFE_AWS_ENV },
    logger: pino({ level: 'info' }, stream),
  });
  t.teardown(() => daemon.stop());
  return { daemon, logged };
}

const mb = (bytes: number) => (bytes / 1024 / 1024).toFixed(1);

/** A hello whose protocol field is not an integer other than 1 (that one closes the connection on purpose). */
function keepProtocol(value: Record<string, unknown>): Record<string, unknown> {
  const protocol = value['protocol'];
  if (value['type'] === 'hello' && Number.isInteger(protocol) && protocol !== 1) value['protocol'] = 1.5;
  return value;
}

/**
 * Sends `count` fuzzed messages on one connection (reconnecting when the daemon closes it, which it may
 * only do with a close code after a typed error) and checks each gets exactly one typed answer.
 */
async function fuzzConnection(
  daemon: RunningDaemon,
  r: Rng,
  count: number,
  counter: { n: number },
  kinds: Map<string, number>,
  problems: string[],
): Promise<number> {
  let sent = 0;
  while (sent < count) {
    const client = await RawClient.connect(daemon.port, daemon.token);
    client.text(JSON.stringify(hello));
    if (!(await client.waitFor(1, 10_000))) problems.push('no welcome within 10 s');
    let expected = 1;
    const recent: string[] = [];
    // At most 100 messages per 600 ms: below the per-connection rate limit (200/s), so every message
    // is judged on its content.
    while (sent < count && !client.ended) {
      const batch = Math.min(100, count - sent);
      const started = Date.now();
      for (let i = 0; i < batch; i++) {
        const message = answerable(r, counter.n++);
        kinds.set(message.kind, (kinds.get(message.kind) ?? 0) + 1);
        recent.push(message.kind);
        client.write(message.frames);
      }
      sent += batch;
      expected += batch;
      if (!(await client.waitFor(expected, 30_000))) {
        problems.push(`only ${client.messages.length - 1} answers to ${expected - 1} messages after 30 s`);
        break;
      }
      await sleep(Math.max(0, 600 - (Date.now() - started)));
    }
    if (client.ended) {
      problems.push(
        `the daemon closed a connection (${client.closeCode}) after ${client.messages.length - 1} answers; ` +
          `kinds sent: ${recent.slice(client.messages.length - 3, client.messages.length + 2).join(', ')}`,
      );
    } else if (client.messages.length !== expected) {
      problems.push(`${client.messages.length} answers for ${expected} messages`);
    }
    for (const raw of client.messages) {
      const problem = checkAnswer(raw);
      if (problem) problems.push(problem);
    }
    client.write(frame(OP.close, Buffer.from([0x03, 0xe8])));
    await client.waitClosed(5000);
    client.destroy();
  }
  return sent;
}

t.test('fuzzed messages get typed errors; other clients are served; the heap stays flat', async (t) => {
  t.comment(`fuzz seed ${SEED} (rerun with SKYFARM_FUZZ_SEED=${SEED})`);
  const r = seededRandom(SEED);
  const { daemon, logged } = await startLoggedDaemon(t);
  const calm = await connectTestClient(t, daemon);
  const watch = monitor(calm);
  const kinds = new Map<string, number>();
  const closeKinds = new Map<string, number>();
  const problems: string[] = [];
  const counter = { n: 0 };
  let answerableSent = 0;
  let closingSent = 0;
  let floodSent = 0;
  let closingPerRound = 0;
  let floodLimited = 0;
  let floodClosed = 0;
  const rounds = 5;
  const samples: Array<{ heapUsed: number; arrayBuffers: number }> = [];

  for (let round = 0; round < rounds; round++) {
    // Three fuzzing connections at once.
    const sent = await Promise.all(
      [0, 1, 2].map(() => fuzzConnection(daemon, r, 250, counter, kinds, problems)),
    );
    answerableSent += sent.reduce((a, b) => a + b, 0);

    // Protocol violations: each must end its connection, nothing else.
    const violations = closing(r);
    closingPerRound = violations.length;
    for (const bad of violations) {
      const client = await RawClient.connect(daemon.port, daemon.token);
      if (bad.kind !== 'protocol-mismatch') {
        client.text(JSON.stringify(hello));
        await client.waitFor(1, 10_000);
      }
      client.write(bad.frames);
      closingSent++;
      if (bad.kind === 'truncated-frame-then-eof') {
        client.socket.end();
      } else if (!(await client.waitClosed(10_000))) {
        problems.push(`${bad.kind}: connection still open after 10 s`);
      } else {
        closeKinds.set(bad.kind, (closeKinds.get(bad.kind) ?? 0) + 1);
      }
      for (const raw of client.messages) {
        const problem = checkAnswer(raw);
        if (problem) problems.push(`${bad.kind}: ${problem}`);
      }
      client.destroy();
    }

    // A flood of tiny messages, sent as fast as the socket takes them: rate limited, then closed.
    const flooder = await RawClient.connect(daemon.port, daemon.token);
    flooder.text(JSON.stringify(hello));
    await flooder.waitFor(1, 10_000);
    const tiny = frame(OP.text, Buffer.from('{"type":"request","id":"f","method":"jobs.list"}'));
    const flood = 3000;
    flooder.write(Buffer.concat(Array.from({ length: flood }, () => tiny)));
    floodSent += flood;
    // Each gets an answer (a reply or RATE_LIMITED) until the daemon closes the connection (1008).
    await flooder.waitFor(1 + flood, 30_000);
    const floodAnswers = flooder.messages.slice(1);
    const limited = floodAnswers.filter((m) => m.includes('"RATE_LIMITED"')).length;
    if (limited === 0) problems.push(`a flood of ${flood} messages was never rate limited`);
    if (flooder.ended ? flooder.closeCode !== 1008 : floodAnswers.length !== flood)
      problems.push(`flood: ${floodAnswers.length} answers, close code ${flooder.closeCode}`);
    floodLimited += limited;
    if (flooder.closeCode === 1008) floodClosed++;
    for (const raw of floodAnswers) {
      const problem = checkAnswer(raw);
      if (problem) problems.push(`flood: ${problem}`);
    }
    flooder.destroy();

    await sleep(300); // let the daemon see the closes
    samples.push(heap());
    t.comment(
      `round ${round + 1}: ${counter.n} fuzzed messages so far, heap ${mb(samples.at(-1)!.heapUsed)} MB, ` +
        `buffers ${mb(samples.at(-1)!.arrayBuffers)} MB, hub ${daemon.hub.size}`,
    );
    if (problems.length > 20) break;
  }

  const served = await watch.stop();
  t.comment(`message kinds: ${JSON.stringify(Object.fromEntries(kinds))}`);
  t.comment(`closing kinds: ${JSON.stringify(Object.fromEntries(closeKinds))}`);
  t.same(
    problems.slice(0, 20),
    [],
    `every one of ${answerableSent} messages answered with a typed error or reply`,
  );
  t.ok(answerableSent >= 3000, `thousands of fuzzed messages (${answerableSent})`);
  t.equal(
    closingSent,
    rounds * closingPerRound,
    `${closingSent} protocol violations, each closed its connection`,
  );
  t.ok(
    floodSent >= 10_000,
    `${floodSent} flood messages: ${floodLimited} RATE_LIMITED, ${floodClosed} of ${rounds} flooders closed`,
  );
  t.equal((Object.prototype as Record<string, unknown>)['polluted'], undefined, 'no prototype pollution');
  t.equal(
    served.failures,
    0,
    `the other client got every answer (${served.answered}, slowest ${served.slowest} ms)`,
  );
  t.ok(served.answered >= 10, 'and was asked throughout');
  t.equal(daemon.hub.size, 1, 'only the well-behaved client is still registered');
  t.equal(
    await new Promise<number>((resolve) => daemon.app.server.getConnections((_e, n) => resolve(n))),
    1,
    'no leftover sockets',
  );
  // The first round warms up (compiled validators, pools); after it the heap must not grow.
  const base = samples[1]!;
  const last = samples.at(-1)!;
  t.ok(
    last.heapUsed - base.heapUsed < 2 * 1024 * 1024,
    `heap flat over ${rounds - 2} rounds: ${mb(base.heapUsed)} → ${mb(last.heapUsed)} MB`,
  );
  t.ok(
    last.arrayBuffers - base.arrayBuffers < 8 * 1024 * 1024,
    `buffers flat: ${mb(base.arrayBuffers)} → ${mb(last.arrayBuffers)} MB`,
  );
  const info = await calm.request('jobs.list', {});
  t.same(info.jobs, [], 'no job was created by the fuzzer');
  t.same(logged.errors.slice(0, 5), [], 'hostile input is not logged as a daemon error');
  t.ok(logged.lines < 1000, `the daemon log stays small (${logged.lines} lines, ${logged.warn} warnings)`);
});

t.test('a client that never reads cannot make the daemon buffer without bound', async (t) => {
  const daemon = await startTestDaemon(t, { env: SAFE_AWS_ENV });
  const reader = await connectTestClient(t, daemon);
  let received = 0;
  reader.onEvent(() => received++);
  const slow = await RawClient.connect(daemon.port, daemon.token);
  slow.text(JSON.stringify(hello));
  await slow.waitFor(1, 10_000);
  slow.socket.pause(); // never read again
  const before = heap();
  // A valid job update of about 70 KB (a long list of failed frames).
  const now = new Date().toISOString();
  const job: Job = {
    id: 'j_000000000000',
    name: 'slow reader',
    state: 'rendering',
    backend: 'local',
    blendFile: '/x.blend',
    scene: 'Scene',
    frames: '1-10000',
    output: '/out',
    createdAt: now,
    updatedAt: now,
    stages: { upload: 'done', copy: 'done', render: 'running', publish: 'pending' },
    framesTotal: 20_000,
    framesDone: 0,
    framesFailed: 10_000,
    failedFrames: Array.from({ length: 10_000 }, (_, i) => 100_000 + i),
    progress: 0.5,
    etaSeconds: null,
    message: 'x',
    lastFrame: null,
  };
  const wss = (daemon.app as unknown as { websocketServer: { clients: Set<{ bufferedAmount: number }> } })
    .websocketServer;
  let maxBuffered = 0;
  const events = 600; // 600 × 70 KB = 42 MB if nothing stopped it
  for (let i = 0; i < events; i++) {
    daemon.hub.notify('job.update', job);
    for (const socket of wss.clients) maxBuffered = Math.max(maxBuffered, socket.bufferedAmount);
    // Paced for the reading client: it keeps up; the slow one never reads.
    const paceUntil = Date.now() + 10_000;
    while (received < i - 20 && Date.now() < paceUntil) await sleep(5);
  }
  const deadline = Date.now() + 10_000;
  while (daemon.hub.size > 1 && Date.now() < deadline) await sleep(50);
  t.equal(daemon.hub.size, 1, 'the slow reader was dropped, the reading client stays');
  t.ok(
    maxBuffered <= 16 * 1024 * 1024 + 100_000,
    `at most 16 MiB buffered for it (max ${mb(maxBuffered)} MB)`,
  );
  const waitUntil = Date.now() + 30_000;
  while (received < events && Date.now() < waitUntil) await sleep(100);
  t.equal(received, events, 'the reading client got every event');
  t.same((await reader.request('jobs.list', {})).jobs, [], 'and is still served');
  const after = heap();
  const grew = after.heapUsed + after.arrayBuffers - before.heapUsed - before.arrayBuffers;
  t.ok(
    grew < 8 * 1024 * 1024,
    `its buffer was released: heap+buffers ${mb(before.heapUsed + before.arrayBuffers)} → ` +
      `${mb(after.heapUsed + after.arrayBuffers)} MB`,
  );
  slow.destroy();
});

t.test(
  'a burst of daemon.info requests does not start a Blender for each',
  { skip: blenderSkip },
  async (t) => {
    // A wrapper that counts how often the daemon starts "Blender".
    const dir = t.testdir({});
    const counter = join(dir, 'starts');
    const stateDir = join(dir, 'home');
    writeFileSync(counter, '');
    const wrapper = join(dir, 'blender');
    const real = blenderCommand.includes('/') ? blenderCommand : '/usr/bin/env blender';
    writeFileSync(wrapper, `#!/bin/sh\necho x >> '${counter}'\nexec ${real} "$@"\n`);
    chmodSync(wrapper, 0o755);
    const daemon = await startTestDaemon(t, { stateDir, env: { ...SAFE_AWS_ENV, SKYFARM_BLENDER: wrapper } });
    const client = await RawClient.connect(daemon.port, daemon.token);
    client.text(JSON.stringify(hello));
    await client.waitFor(1, 10_000);
    const burst = 150;
    client.write(
      Array.from({ length: burst }, (_, i) =>
        frame(OP.text, Buffer.from(JSON.stringify({ type: 'request', id: `i${i}`, method: 'daemon.info' }))),
      ),
    );
    t.ok(await client.waitFor(1 + burst, 120_000), `all ${burst} answered`);
    const replies = client.messages
      .slice(1)
      .map(
        (m) => JSON.parse(m) as { type: string; result?: { backends: { local: { available: boolean } } } },
      );
    t.ok(
      replies.every((m) => m.type === 'reply' && m.result?.backends.local.available === true),
      'each says local Blender is available',
    );
    const starts = readFileSync(counter, 'utf8').split('\n').filter(Boolean).length;
    t.ok(starts <= 5, `Blender was started ${starts} times for ${burst} requests`);
    client.destroy();
  },
);
