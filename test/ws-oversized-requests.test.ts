// No request hangs on a message the daemon cannot read: an oversized or malformed request is
// answered with an error carrying its id (read even from the unread message), and what cannot be
// tied to a request (an id-less error, an unreadable answer, a connection closed for size) ends
// every request the CLI's client has waiting, with the reason.
import t from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { WebSocket, WebSocketServer } from 'ws';
import { LIMITS } from '../protocol/generated/protocol.js';
import { DaemonClient } from '../daemon/src/client/daemon-client.js';
import { SkyfarmError } from '../daemon/src/errors.js';
import { startTestDaemon } from './helpers/daemon.js';

/** A dependency list whose request is about `bytes` long, with long paths like a fluid cache's. */
function dependencies(bytes: number): Array<{ path: string; kind: string; missing: boolean }> {
  const folder = `/projects/${'long folder name '.repeat(6)}/cache_fluid_8c2e`;
  const one = JSON.stringify({ path: `${folder}/data/fluid_data_0001.vdb`, kind: 'volume', missing: true });
  return Array.from({ length: Math.ceil(bytes / (one.length + 1)) }, (_, i) => ({
    path: `${folder}/data/fluid_data_${String(i).padStart(4, '0')}.vdb`,
    kind: 'volume',
    missing: true,
  }));
}

async function codeOf(promise: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await promise;
  } catch (error) {
    t.ok(error instanceof SkyfarmError, 'a typed error');
    return { code: (error as SkyfarmError).code, message: (error as Error).message };
  }
  return { code: 'resolved', message: '' };
}

t.test('the CLI client refuses an oversized request at once, naming its size', async (t) => {
  const daemon = await startTestDaemon(t);
  const client = await DaemonClient.connect({ stateDir: daemon.paths.root });
  t.teardown(() => client.close());
  const blend = join(t.testdir({}), 'shot.blend');
  // A field no reference can shrink (what a foreign or buggy caller might send): refused before sending.
  const error = await codeOf(
    client.request('project.upload', { blendFile: `${blend}${'/x'.repeat(800 * 1024)}`, dependencies: [] }),
  );
  t.equal(error.code, 'MESSAGE_TOO_LARGE');
  t.match(
    error.message,
    /project\.upload request is \d+ bytes; the daemon reads messages of at most 1048576/,
  );
  t.same(await client.request('jobs.list', {}), { jobs: [] }, 'the connection still works');
  // A list that long goes by reference instead: the daemon reads the request and answers about the scene.
  const listed = await codeOf(
    client.request('project.upload', { blendFile: blend, dependencies: dependencies(1.5 * 1024 * 1024) }),
  );
  t.equal(listed.code, 'FILE_NOT_FOUND', 'a long dependency list reaches the daemon');
  t.match(listed.message, /shot\.blend does not exist/);
});

t.test('the daemon answers a request it will not read with its id; other requests go on', async (t) => {
  const daemon = await startTestDaemon(t);
  // This client sends what the protocol refuses, as an older or foreign client would.
  const client = await DaemonClient.connect({ stateDir: daemon.paths.root, sendLimitBytes: Infinity });
  t.teardown(() => client.close());
  const blend = join(t.testdir({}), 'shot.blend');
  const [before, oversized, after] = await Promise.allSettled([
    client.request('jobs.list', {}),
    client.request('project.upload', { blendFile: blend, dependencies: dependencies(2 * 1024 * 1024) }),
    client.request('jobs.list', {}),
  ]);
  t.same(before, { status: 'fulfilled', value: { jobs: [] } }, 'the request before it is answered');
  t.same(after, { status: 'fulfilled', value: { jobs: [] } }, 'the request after it is answered');
  t.equal(oversized.status, 'rejected');
  const reason = (oversized as PromiseRejectedResult).reason as SkyfarmError;
  t.equal(reason.code, 'MESSAGE_TOO_LARGE', 'the oversized one fails with MESSAGE_TOO_LARGE');
  t.match(reason.message, /project\.upload request of \d{7} bytes exceeds the limit of 1048576 bytes/);

  // Far over the limit (beyond what the daemon buffers at all): the daemon closes the connection,
  // and the request fails with the reason instead of waiting.
  const huge = await codeOf(
    client.request('project.upload', {
      blendFile: blend,
      dependencies: dependencies(5 * LIMITS.maxMessageBytes),
    }),
  );
  t.equal(huge.code, 'MESSAGE_TOO_LARGE');
  t.match(huge.message, /closed \(1009.*too large/);
});

t.test('a raw oversized or broken request gets an error naming its id', async (t) => {
  const daemon = await startTestDaemon(t);
  const socket = new WebSocket(`ws://127.0.0.1:${daemon.port}/ws`, {
    headers: { Authorization: `Bearer ${daemon.token}` },
  });
  const inbox: Array<Record<string, unknown>> = [];
  let wake: (() => void) | undefined;
  socket.on('message', (data) => {
    inbox.push(JSON.parse(data.toString()) as Record<string, unknown>);
    wake?.();
  });
  t.teardown(() => socket.close());
  await new Promise((resolve) => socket.once('open', resolve));
  const next = async (): Promise<Record<string, unknown>> => {
    while (inbox.length === 0) await new Promise<void>((resolve) => (wake = resolve));
    return inbox.shift()!;
  };
  socket.send(JSON.stringify({ type: 'hello', protocol: 1, client: { name: 't', version: '1' } }));
  t.match(await next(), { type: 'welcome' });
  // The id after a megabyte of params, and the id before a syntax error, are both read.
  const params = { blendFile: '/x.blend', dependencies: dependencies(1.2 * 1024 * 1024) };
  socket.send(JSON.stringify({ type: 'request', method: 'project.upload', params, id: 'late-id' }));
  t.match(await next(), { type: 'error', id: 'late-id', code: 'MESSAGE_TOO_LARGE' });
  socket.send('{"type":"request","id":"broken-1","method":"jobs.list","params":{"x":}');
  t.match(await next(), { type: 'error', id: 'broken-1', code: 'BAD_MESSAGE' });
  socket.send('{"type":"request","method":"jobs.list","params":{"x":},"id":"inner-break"}');
  t.match(await next(), { type: 'error', id: 'inner-break', code: 'BAD_MESSAGE' }, 'a break inside params');
  socket.send('{"type":"request","method":"jobs.list" "params":{},"id":"unseen"}');
  t.match(
    await next(),
    { type: 'error', id: null, code: 'BAD_MESSAGE' },
    'an id past a top-level break is not',
  );
});

t.test('an error the client cannot tie to a request ends every waiting request', async (t) => {
  const dir = t.testdir({});
  // A daemon that answers each request's first message with an id-less error (as the daemon does
  // for a message it cannot read at all), and the second with something unreadable.
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  t.teardown(() => new Promise((resolve) => server.close(resolve)));
  await new Promise((resolve) => server.once('listening', resolve));
  let requests = 0;
  server.on('connection', (socket) => {
    socket.on('message', (data) => {
      const message = JSON.parse(data.toString()) as { type: string };
      if (message.type === 'hello') {
        socket.send(
          JSON.stringify({
            type: 'welcome',
            protocol: 1,
            minProtocol: 1,
            daemon: { name: 'skyfarm', version: 'x' },
          }),
        );
        return;
      }
      requests++;
      if (requests === 2)
        socket.send(
          JSON.stringify({
            type: 'error',
            id: null,
            code: 'MESSAGE_TOO_LARGE',
            message: 'could not read it',
          }),
        );
      if (requests === 4) socket.send('{"type":"reply","id":');
    });
  });
  const port = (server.address() as { port: number }).port;
  writeFileSync(join(dir, 'token'), 'x\n');
  const client = await DaemonClient.connect({ stateDir: dir, port, token: 'x' });
  t.teardown(() => client.close());
  const first = await Promise.allSettled([client.request('jobs.list', {}), client.request('jobs.list', {})]);
  for (const result of first) {
    t.equal(result.status, 'rejected', 'a waiting request is ended');
    t.match((result as PromiseRejectedResult).reason, {
      code: 'MESSAGE_TOO_LARGE',
      message: 'could not read it',
    });
  }
  const second = await Promise.allSettled([client.request('jobs.list', {}), client.request('jobs.list', {})]);
  for (const result of second) {
    t.equal(result.status, 'rejected', 'ended by an unreadable answer');
    t.match((result as PromiseRejectedResult).reason, {
      code: 'BAD_MESSAGE',
      message: /unreadable message from the daemon/,
    });
  }
});
