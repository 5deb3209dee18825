// Installs skyfarm the way a user does: `npm pack` of this checkout, then `npm install -g` of that
// tarball into an empty prefix. The pack runs in a copy of the checkout's files (tracked and new,
// node_modules linked), so its prepack build never rewrites the dist/ other tests are reading (a temp folder, so the chroot Blenders see it too). Dependencies come
// from the npm cache or the registry. better-sqlite3's install script downloads its prebuilt binary
// as it would for a user, from a loopback mirror that serves the one built for this Node.js
// (node_modules/better-sqlite3 of the checkout); any other request falls back to its source build.
import { execFileSync, spawn } from 'node:child_process';
import {
  copyFileSync,
  createReadStream,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
} from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Test } from 'tap';
import { projectRoot } from './cli.js';

export interface PackedInstall {
  tarball: string;
  prefix: string;
  /** The installed package folder (`<prefix>/lib/node_modules/skyfarm`). */
  packageDir: string;
  skyfarm: string;
  skyfarmWorker: string;
  /** The prebuilt binaries the mirror handed out (one, unless npm built better-sqlite3 itself). */
  prebuiltServed: string[];
  seconds: { pack: number; install: number };
}

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function runCommand(
  command: string,
  args: string[],
  options: { env: NodeJS.ProcessEnv; cwd: string; timeoutMs: number },
): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      env: options.env,
      cwd: options.cwd,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => {
      if (child.pid) process.kill(child.pid, 'SIGKILL');
      reject(new Error(`${command} ${args.join(' ')} did not finish in ${options.timeoutMs} ms\n${stderr}`));
    }, options.timeoutMs);
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** A folder under the system temp dir, removed when the test ends. */
export function tempFolder(t: Test, prefix: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Serves this checkout's better-sqlite3 binary as prebuild-install expects to download it. */
async function prebuiltMirror(t: Test, staging: string): Promise<{ url: string; served: string[] }> {
  const moduleDir = path.join(projectRoot, 'node_modules', 'better-sqlite3');
  const { version } = JSON.parse(readFileSync(path.join(moduleDir, 'package.json'), 'utf8')) as {
    version: string;
  };
  const name = `better-sqlite3-v${version}-node-v${process.versions.modules}-${process.platform}-${process.arch}.tar.gz`;
  const archive = path.join(staging, name);
  const tar = await runCommand(
    'tar',
    ['-czf', archive, '-C', moduleDir, 'build/Release/better_sqlite3.node'],
    {
      env: process.env,
      cwd: staging,
      timeoutMs: 60_000,
    },
  );
  if (tar.code !== 0) throw new Error(`tar failed: ${tar.stderr}`);
  const served: string[] = [];
  const server = createServer((request, response) => {
    if (request.url === `/v${version}/${name}`) {
      served.push(name);
      response.writeHead(200, { 'content-type': 'application/gzip' });
      createReadStream(archive).pipe(response);
      return;
    }
    response.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, served };
}

/** The checkout's files as they are now (tracked and new ones, not ignored ones), node_modules linked. */
function copyOfCheckout(target: string): string {
  const listed = execFileSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], {
    cwd: projectRoot,
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  for (const file of new Set(listed.split('\0').filter(Boolean))) {
    const from = path.join(projectRoot, file);
    if (!existsSync(from)) continue; // deleted in the working tree
    mkdirSync(path.dirname(path.join(target, file)), { recursive: true });
    copyFileSync(from, path.join(target, file));
  }
  symlinkSync(path.join(projectRoot, 'node_modules'), path.join(target, 'node_modules'));
  return target;
}

/** Packs this checkout and installs the tarball into an empty prefix. */
export async function installPacked(t: Test): Promise<PackedInstall> {
  const dir = tempFolder(t, 'skyfarm-packed-');
  const prefix = path.join(dir, 'prefix');
  const staging = path.join(dir, 'staging');
  mkdirSync(staging);
  let began = Date.now();
  const source = copyOfCheckout(path.join(dir, 'source'));
  const pack = await runCommand('npm', ['pack', '--silent', '--pack-destination', dir], {
    env: process.env,
    cwd: source,
    timeoutMs: 300_000,
  });
  if (pack.code !== 0) throw new Error(`npm pack failed: ${pack.stderr}`);
  const tarball = path.join(dir, pack.stdout.trim().split('\n').pop()!);
  const packSeconds = (Date.now() - began) / 1000;
  const mirror = await prebuiltMirror(t, staging);
  began = Date.now();
  const install = await runCommand(
    'npm',
    ['install', '-g', '--prefix', prefix, '--prefer-offline', '--no-audit', '--no-fund', tarball],
    {
      env: { ...process.env, npm_config_better_sqlite3_binary_host: mirror.url },
      cwd: staging,
      timeoutMs: 600_000,
    },
  );
  if (install.code !== 0) throw new Error(`npm install -g failed: ${install.stderr}`);
  const packageDir = path.join(prefix, 'lib', 'node_modules', 'skyfarm');
  const skyfarm = path.join(prefix, 'bin', 'skyfarm');
  const skyfarmWorker = path.join(prefix, 'bin', 'skyfarm-worker');
  for (const file of [packageDir, skyfarm, skyfarmWorker])
    if (!existsSync(file)) throw new Error(`${file} is missing after npm install -g`);
  return {
    tarball,
    prefix,
    packageDir,
    skyfarm,
    skyfarmWorker,
    prebuiltServed: mirror.served,
    seconds: { pack: packSeconds, install: (Date.now() - began) / 1000 },
  };
}

/** An environment like a fresh user's: an empty HOME, no skyfarm variables but those given. */
export function userEnv(home: string, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, HOME: home };
  for (const name of Object.keys(env)) {
    if (name.startsWith('SKYFARM_') || name.startsWith('XDG_') || name.startsWith('npm_')) delete env[name];
  }
  return { ...env, SKYFARM_PORT: '0', ...extra };
}
