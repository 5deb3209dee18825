// better-sqlite3 built for one Node.js and run by another: the user sees one line saying which Node
// versions disagree and the command that fixes it, from `skyfarm daemon` and `daemon start`, never a dlopen stack trace.
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { nativeModuleMismatch } from '../daemon/src/util/native-module.js';
import { cliEntry } from './helpers/cli.js';

// Node's own message, as Node 20 prints it for a module built by Node 24.
const NODE_MESSAGE =
  "The module '/home/ann/.npm-global/lib/node_modules/skyfarm/node_modules/better-sqlite3/build/Release/better_sqlite3.node'\n" +
  'was compiled against a different Node.js version using\n' +
  'NODE_MODULE_VERSION 137. This version of Node.js requires\n' +
  'NODE_MODULE_VERSION 115. Please try re-compiling or re-installing\n' +
  'the module (for instance, using `npm rebuild` or `npm install`).';

t.test("Node's mismatch message becomes one clear error", async (t) => {
  const error = nativeModuleMismatch(
    Object.assign(new Error(NODE_MESSAGE), { code: 'ERR_DLOPEN_FAILED' }),
    'better-sqlite3',
    {
      version: 'v20.20.2',
      abi: '115',
    },
  );
  t.ok(error, 'recognised');
  t.equal(error?.code, 'NODE_MODULE_MISMATCH');
  t.match(
    error?.message,
    /built for Node\.js 24 \(NODE_MODULE_VERSION 137\)/,
    'names the Node it was built for',
  );
  t.match(error?.message, /runs on Node\.js v20\.20\.2 \(NODE_MODULE_VERSION 115\)/, 'and the one running');
  t.match(error?.message, /npm rebuild better-sqlite3/, 'and the fix');
  t.notMatch(error?.message, /\n/, 'on one line');
});

t.test('other load errors are left alone', async (t) => {
  t.equal(
    nativeModuleMismatch(new Error('libc.so.6: version `GLIBC_2.38` not found'), 'better-sqlite3'),
    null,
  );
  t.equal(nativeModuleMismatch('not an error', 'better-sqlite3'), null);
});

/** A `node` on PATH whose module ABI differs from this one's (CI: the machine's own Node beside Node 24). */
function otherNode(): { path: string; version: string } | null {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    const candidate = path.join(dir, 'node');
    if (!dir || !existsSync(candidate)) continue;
    const probe = spawnSync(candidate, ['-p', 'process.versions.modules + " " + process.version'], {
      encoding: 'utf8',
      timeout: 30_000,
    });
    const [abi, version] = probe.stdout.trim().split(' ');
    if (probe.status === 0 && abi && version && abi !== process.versions.modules)
      return { path: candidate, version };
  }
  return null;
}

const other = otherNode();
t.test(
  'the daemon started by another Node.js says so in one line',
  {
    skip: other
      ? false
      : `no Node.js with another module ABI than ${process.version} on PATH (CI runs the suite on Node 24 with the machine's Node beside it)`,
  },
  async (t) => {
    const home = t.testdir();
    chmodSync(home, 0o700); // the daemon refuses a state dir others can read
    const env = { ...process.env, SKYFARM_HOME: home, SKYFARM_PORT: '0' };
    for (const args of [['daemon'], ['daemon', 'start']]) {
      const run = spawnSync(other!.path, [cliEntry, ...args], { env, encoding: 'utf8', timeout: 60_000 });
      t.not(run.status, 0, `skyfarm ${args.join(' ')} fails`);
      t.match(
        run.stderr,
        /better-sqlite3 was built for Node\.js \d+/,
        `skyfarm ${args.join(' ')}: what is wrong`,
      );
      t.match(
        run.stderr,
        new RegExp(`runs on Node\\.js ${other!.version.replace(/\./g, '\\.')}`),
        'which Node runs',
      );
      t.match(run.stderr, /npm rebuild better-sqlite3/, 'the fix');
      t.notMatch(run.stderr, /\n\s+at /, 'no stack trace');
    }
  },
);
