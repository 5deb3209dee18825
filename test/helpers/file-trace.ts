// What a program really opens: runs it under `strace -f -ff` (every process and thread its own log,
// so no line is split) and reads the open/openat calls back. For the Blenders in a chroot the
// wrapper execs chroot, strace follows it, and paths inside are the same as outside.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, writeFile, chmod } from 'node:fs/promises';
import path from 'node:path';
import { tmpdir } from 'node:os';

export const straceAvailable = spawnSync('strace', ['-V'], { encoding: 'utf8' }).status === 0;

export interface FileTrace {
  /** Regular files opened for reading and found. */
  read: Set<string>;
  /** Files a read-only open looked for and did not find (ENOENT). */
  notFound: Set<string>;
  /** Files opened for writing (created or truncated). */
  written: Set<string>;
  /** Folders opened to be listed. */
  listed: Set<string>;
}

/** Decodes strace's C-style string escapes (non-ASCII bytes come as `\303\274`) into UTF-8 text. */
export function decodeStraceString(text: string): string {
  const bytes: number[] = [];
  for (let i = 0; i < text.length; i++) {
    const char = text[i]!;
    if (char !== '\\') {
      bytes.push(...Buffer.from(char, 'utf8'));
      continue;
    }
    const next = text[++i] ?? '';
    const octal = /^[0-7]{1,3}/.exec(text.slice(i))?.[0];
    if (octal) {
      bytes.push(parseInt(octal, 8));
      i += octal.length - 1;
    } else if (next === 'x') {
      bytes.push(parseInt(text.slice(i + 1, i + 3), 16));
      i += 2;
    } else {
      const simple: Record<string, number> = { n: 10, t: 9, r: 13, v: 11, f: 12, '\\': 92, '"': 34 };
      bytes.push(simple[next] ?? next.charCodeAt(0));
    }
  }
  return Buffer.from(bytes).toString('utf8');
}

// openat(AT_FDCWD, "/a/b", O_RDONLY|O_CLOEXEC) = 3   open("/a/b", O_WRONLY|O_CREAT|O_TRUNC, 0666) = -1 ENOENT (…)
// newfstatat(AT_FDCWD, "/a/b", 0x7ffd…, 0) = -1 ENOENT (…)   access("/a/b", F_OK) = 0
const CALL = /^(\w+)\((?:AT_FDCWD, )?"((?:[^"\\]|\\.)*)", (.*)\)\s*=\s*(-?\d+)(?: (E[A-Z]+))?/;
const OPENS = new Set(['open', 'openat', 'openat2']);

/** The system calls traced: opens, and the stat/access calls with which Blender checks for a file. */
export const TRACED_CALLS = 'trace=open,openat,openat2,%%stat,access,faccessat,faccessat2'; // %%stat: every stat variant (newfstatat, statx, …)

/** Parses the logs of one strace run (`<prefix>.<pid>` files) into what was read, missed, written. */
export async function readTrace(dir: string): Promise<FileTrace> {
  const trace: FileTrace = { read: new Set(), notFound: new Set(), written: new Set(), listed: new Set() };
  for (const name of await readdir(dir)) {
    const text = await readFile(path.join(dir, name), 'latin1');
    for (const line of text.split('\n')) {
      const match = CALL.exec(line);
      if (!match) continue;
      const file = decodeStraceString(Buffer.from(match[2]!, 'latin1').toString('utf8'));
      if (!path.isAbsolute(file)) continue; // relative to some folder fd: not a project path here
      const normal = path.resolve(file); // normalised, without a trailing separator
      const result = Number(match[4]);
      if (!OPENS.has(match[1]!)) {
        if (result < 0 && match[5] === 'ENOENT') trace.notFound.add(normal); // checked for, not there
        continue;
      }
      const flags = match[3]!.replace(/^\{flags=/, '').split(/[|,} ]/);
      if (flags.includes('O_DIRECTORY')) {
        if (result >= 0) trace.listed.add(normal);
        continue;
      }
      // O_RDWR alone opens an existing file (Blender reads a bake's metadata that way).
      const writes = flags.some((flag) => ['O_WRONLY', 'O_CREAT', 'O_TRUNC'].includes(flag));
      if (writes) {
        if (result >= 0) trace.written.add(normal);
      } else if (result >= 0) {
        trace.read.add(normal);
      } else if (match[5] === 'ENOENT') {
        trace.notFound.add(normal);
      }
    }
  }
  // A file the run wrote and then read back (a cache it simulated) was not an input.
  for (const file of trace.written) trace.read.delete(file);
  return trace;
}

/** Runs `command args` under strace and returns what it opened. */
export async function traceRun(
  command: string,
  args: string[],
  options: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs: number },
): Promise<FileTrace & { code: number | null; output: string }> {
  const dir = await mkdtemp(path.join(tmpdir(), 'skyfarm-trace-'));
  try {
    const straceArgs = ['-f', '-ff', '-qq', '-s', '65535', '-e', TRACED_CALLS];
    const child = spawn('strace', [...straceArgs, '-o', path.join(dir, 't'), '--', command, ...args], {
      env: options.env ?? process.env,
      cwd: options.cwd,
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const timer = setTimeout(() => child.pid && process.kill(child.pid, 'SIGKILL'), options.timeoutMs);
    const code = await new Promise<number | null>((resolve, reject) => {
      child.once('error', reject);
      child.once('close', (exitCode) => resolve(exitCode));
    }).finally(() => clearTimeout(timer));
    return { ...(await readTrace(dir)), code, output };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * An executable script that runs `command` under strace when its arguments contain `marker`, writing
 * the logs into a new folder under `logDir` per run, and runs it plainly otherwise: handed to the
 * daemon as SKYFARM_BLENDER, it traces the renders and leaves probes and version checks alone.
 */
export async function tracingWrapper(
  file: string,
  command: string,
  logDir: string,
  marker: string,
): Promise<string> {
  const quote = (text: string) => `'${text.replace(/'/g, `'\\''`)}'`;
  await writeFile(
    file,
    [
      '#!/bin/sh',
      `case "$*" in *${marker}*)`,
      `  dir=$(mktemp -d ${quote(logDir)}/run.XXXXXX)`,
      `  exec strace -f -ff -qq -s 65535 -e ${TRACED_CALLS} -o "$dir/t" -- ${quote(command)} "$@" ;;`,
      'esac',
      `exec ${quote(command)} "$@"`,
      '',
    ].join('\n'),
  );
  await chmod(file, 0o755);
  return file;
}

/** Every file the traced runs under `logDir` (see tracingWrapper) opened. */
export async function readTraces(logDir: string): Promise<FileTrace> {
  const all: FileTrace = { read: new Set(), notFound: new Set(), written: new Set(), listed: new Set() };
  for (const run of await readdir(logDir)) {
    const trace = await readTrace(path.join(logDir, run));
    for (const key of ['read', 'notFound', 'written', 'listed'] as const)
      for (const file of trace[key]) all[key].add(file);
  }
  for (const file of all.written) all.read.delete(file);
  return all;
}
