// Who may connect: the token is required, browsers (Origin) and foreign Host names are refused, the
// daemon listens on loopback only, and its secrets are private files.
import t from 'tap';
import { statSync, readFileSync } from 'node:fs';
import { request } from 'node:http';
import { WebSocket } from 'ws';
import { startTestDaemon } from './helpers/daemon.js';

function upgrade(
  port: number,
  headers: Record<string, string>,
): Promise<{ status: number; body: string } | 'open'> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(`ws://127.0.0.1:${port}/ws`, { headers });
    socket.once('open', () => {
      socket.close();
      resolve('open');
    });
    socket.once('unexpected-response', (req, res) => {
      let body = '';
      res.on('data', (chunk: Buffer) => (body += chunk.toString()));
      res.on('end', () => {
        req.destroy();
        resolve({ status: res.statusCode ?? 0, body });
      });
    });
    socket.once('error', reject);
  });
}

function httpGet(
  port: number,
  path: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers }, (res) => {
      let body = '';
      res.on('data', (chunk: Buffer) => (body += chunk.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.once('error', reject);
    req.end();
  });
}

t.test('token, origin and host checks on the WebSocket upgrade', async (t) => {
  const daemon = await startTestDaemon(t);
  const auth = { Authorization: `Bearer ${daemon.token}` };

  t.equal(await upgrade(daemon.port, auth), 'open', 'the right token connects');

  const none = await upgrade(daemon.port, {});
  t.equal(typeof none === 'object' && none.status, 401, 'no token: 401');
  t.match(typeof none === 'object' ? none.body : '', /UNAUTHORIZED/);

  const wrong = await upgrade(daemon.port, { Authorization: `Bearer ${daemon.token.slice(0, -2)}xx` });
  t.equal(typeof wrong === 'object' && wrong.status, 401, 'a wrong token: 401');

  const browser = await upgrade(daemon.port, { ...auth, Origin: 'https://evil.example' });
  t.equal(
    typeof browser === 'object' && browser.status,
    403,
    'a browser Origin is refused even with the token',
  );
  t.match(typeof browser === 'object' ? browser.body : '', /FORBIDDEN_ORIGIN/);

  const localOrigin = await upgrade(daemon.port, { ...auth, Origin: `http://127.0.0.1:${daemon.port}` });
  t.equal(typeof localOrigin === 'object' && localOrigin.status, 403, 'even a localhost page is a browser');

  const rebinding = await upgrade(daemon.port, { ...auth, Host: `attacker.example:${daemon.port}` });
  t.equal(
    typeof rebinding === 'object' && rebinding.status,
    403,
    'a foreign Host (DNS rebinding) is refused',
  );

  for (const host of [`localhost:${daemon.port}`, `127.0.0.1:${daemon.port}`, `[::1]:${daemon.port}`]) {
    t.equal(await upgrade(daemon.port, { ...auth, Host: host }), 'open', `Host ${host} is accepted`);
  }
});

t.test('health route, loopback binding and private state files', async (t) => {
  const daemon = await startTestDaemon(t);
  const health = await httpGet(daemon.port, '/health');
  t.equal(health.status, 200);
  t.match(JSON.parse(health.body), { ok: true, name: 'skyfarm' });
  t.equal(
    (await httpGet(daemon.port, '/health', { Host: 'evil.example' })).status,
    403,
    'health checks Host too',
  );

  const address = daemon.app.server.address();
  t.equal(typeof address === 'object' && address?.address, '127.0.0.1', 'bound to 127.0.0.1 only');

  t.equal(statSync(daemon.paths.root).mode & 0o777, 0o700, 'state dir is 0700');
  t.equal(statSync(daemon.paths.token).mode & 0o777, 0o600, 'token file is 0600');
  const info = JSON.parse(readFileSync(daemon.paths.daemonInfo, 'utf8')) as Record<string, unknown>;
  t.same(Object.keys(info).sort(), ['pid', 'port', 'version'], 'daemon.json holds pid, port, version');
  t.equal(info['port'], daemon.port);
  t.notMatch(
    readFileSync(daemon.paths.daemonInfo, 'utf8'),
    daemon.token,
    'daemon.json does not contain the token',
  );
});
