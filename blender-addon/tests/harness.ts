// Shared by the test/addon-*.test.ts wrappers: runs python3 and real Blender on the add-on's test
// scripts, starts and stops Xvfb, photographs it while Blender runs, and cleans up daemons that
// Blender started. Every process started here is stopped by its pid.
import { spawn, spawnSync } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  linkSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import type { Test } from 'tap';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const addonRoot = path.join(repoRoot, 'blender-addon');
export const addonTests = path.join(addonRoot, 'tests');
export const cliEntry = path.join(repoRoot, 'dist', 'daemon', 'src', 'cli', 'main.js');
export const artifactsRoot = path.join(repoRoot, '.tap', 'artifacts');
export const blender = process.env.SKYFARM_BLENDER?.trim() || 'blender';

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

/** What a GUI script asked to be photographed (support.capture), and what must be visible there. */
export interface CaptureRequest {
  name: string;
  png: string;
  blender: string;
  /** Blender's window on the X screen: x, y, width, height. */
  window: [number, number, number, number];
  theme: Record<'progress' | 'slider', { item: Rgb; inner: Rgb; text: Rgb }>;
  /** Editors' main regions: [left, top, width, height] on the X screen, and their theme backgrounds
   * (the editor's own and its panels'). */
  regions: { label: string; rect: [number, number, number, number]; backs: Rgb[] }[];
  /** A job's progress bar as the panel lays it out; textWidth is its text's width in Blender's UI font. */
  bars: { label: string; kind: 'progress' | 'slider'; progress: number; text: string; textWidth: number }[];
  /** Every text the job's box draws (the layout recorder's reading), for the log. */
  texts?: string[];
}
export type Rgb = [number, number, number];

export interface BlenderRunResult extends RunResult {
  /** The screenshots taken while Blender ran, in order. */
  captures: CaptureRequest[];
}

/** Runs a command to completion (SIGKILL by pid after timeoutMs) and returns its output. */
export function run(
  command: string,
  args: string[],
  options: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs: number },
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env: options.env ?? process.env, cwd: options.cwd ?? repoRoot });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => {
      timedOut = true;
      if (child.pid) process.kill(child.pid, 'SIGKILL');
    }, options.timeoutMs);
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, timedOut });
    });
  });
}

/** Last lines of a process's output, for assertion messages. */
export function tail(result: RunResult, lines = 60): string {
  return `${result.stdout}\n${result.stderr}`.trim().split('\n').slice(-lines).join('\n');
}

/**
 * Environment for a Blender run: private config/scripts/temp folders so nothing touches the user's
 * Blender setup or collides with parallel tests.
 */
export function blenderEnv(t: Test, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  // Not t.testdir(): calling that again would wipe the test's own fixture folder.
  const dir = mkdtempSync(path.join(tmpdir(), 'skyfarm-blender-'));
  for (const sub of ['config', 'scripts', 'extensions', 'tmp']) mkdirSync(path.join(dir, sub));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    BLENDER_USER_CONFIG: path.join(dir, 'config'),
    BLENDER_USER_SCRIPTS: path.join(dir, 'scripts'),
    BLENDER_USER_EXTENSIONS: path.join(dir, 'extensions'),
    TMPDIR: path.join(dir, 'tmp'),
    PYTHONDONTWRITEBYTECODE: '1',
    ...extra,
  };
  // A daemon Blender starts renders with that Blender (the add-on passes its own binary), as for a
  // user; this variable names the tests' Blender as the host sees it (a chroot wrapper, maybe).
  if (!('SKYFARM_BLENDER' in extra)) delete env.SKYFARM_BLENDER;
  return env;
}

/**
 * The Node.js running the tests, at a path the tests' Blender can run too (a newer Blender runs in a
 * chroot that sees /tmp but not /usr/bin): a hard link (a copy across file systems) in a temp folder.
 */
export function nodeForBlender(t: Test): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'skyfarm-node-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const node = path.join(dir, 'node');
  try {
    linkSync(process.execPath, node);
  } catch {
    copyFileSync(process.execPath, node);
  }
  return node;
}

/** Runs one of blender-addon/tests/blender/*.py with JSON arguments and checks it passed. */
export async function runBlenderScript(
  t: Test,
  options: {
    script: string;
    args: Record<string, unknown>;
    env: NodeJS.ProcessEnv;
    blendFile?: string;
    background?: boolean;
    /** --factory-startup (default true); false loads the preferences in BLENDER_USER_CONFIG. */
    factoryStartup?: boolean;
    /** The Xvfb display Blender runs on: the script's support.capture() requests are photographed. */
    display?: string;
    timeoutMs: number;
  },
): Promise<BlenderRunResult> {
  const captureDir = options.display ? mkdtempSync(path.join(tmpdir(), 'skyfarm-captures-')) : undefined;
  if (captureDir) t.teardown(() => rmSync(captureDir, { recursive: true, force: true }));
  const argv = [
    ...(options.background === false ? [] : ['-b']),
    ...(options.factoryStartup === false ? [] : ['--factory-startup']),
    ...(options.blendFile ? [options.blendFile] : []),
    '--python-exit-code',
    '1',
    '--python',
    path.join(addonTests, 'blender', options.script),
    '--',
    JSON.stringify(captureDir ? { ...options.args, captureDir } : options.args),
  ];
  const attempt = async (): Promise<BlenderRunResult> => {
    if (!captureDir || !options.display) {
      return { ...(await run(blender, argv, { env: options.env, timeoutMs: options.timeoutMs })), captures: [] };
    }
    for (const name of readdirSync(captureDir)) rmSync(path.join(captureDir, name), { force: true });
    const photographer = photographRequests(captureDir, options.display);
    const result = await run(blender, argv, { env: options.env, timeoutMs: options.timeoutMs }).catch(
      async (error: unknown) => {
        await photographer.stop();
        throw error;
      },
    );
    return { ...result, captures: await photographer.stop() };
  };
  let result = await attempt();
  const crash = crashReport(result).crash;
  if (options.background === false && crash !== undefined && !/SKYFARM_TEST_FAILED/.test(result.stdout)) {
    // Blender 3.4 under Xvfb rarely segfaults early in a GUI run: seen in about 1 run of gui_upload.py
    // in 6 on a loaded machine, right after the add-on was enabled; the report has no C backtrace and
    // its Python one shows only the add-on's network thread queueing a status. Not understood yet, so
    // the scenario runs once more, with the report shown; a second crash fails the test.
    t.comment(`Blender crashed running ${options.script}; running it once more. Crash report:\n${crash}`);
    result = await attempt();
  }
  t.notOk(result.timedOut, `${options.script} finished within ${options.timeoutMs / 1000} s`);
  t.equal(result.code, 0, `${options.script} exits 0`, { output: tail(result), ...crashReport(result) });
  t.match(result.stdout, /SKYFARM_TEST_PASSED/, `${options.script} reports success`, { output: tail(result) });
  t.notMatch(result.stdout, /SKYFARM_TEST_FAILED/, `${options.script} reports no failure`);
  return result;
}

/**
 * While Blender runs, answers each `NAME.request.json` its script writes into `dir` by photographing
 * the whole X display with ImageMagick (`import -window root`) and writing `NAME.done.json`.
 * Blender's own screenshot operators save black images under Xvfb in 4.3 and 5.2.
 */
function photographRequests(dir: string, display: string): { stop(): Promise<CaptureRequest[]> } {
  const handled: CaptureRequest[] = [];
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      const pending = readdirSync(dir)
        .filter((name) => name.endsWith('.request.json'))
        .filter((name) => !existsSync(path.join(dir, name.replace(/\.request\.json$/, '.done.json'))))
        .sort();
      for (const name of pending) {
        const request = JSON.parse(readFileSync(path.join(dir, name), 'utf8')) as CaptureRequest;
        mkdirSync(path.dirname(request.png), { recursive: true });
        // PNG24: always 8-bit RGB, whatever colours the picture holds (screen.ts decodes that).
        const shot = await run('import', ['-display', display, '-window', 'root', `PNG24:${request.png}`], {
          timeoutMs: 60_000,
        });
        const ok = shot.code === 0 && existsSync(request.png);
        if (ok) {
          handled.push(request);
          // Beside the picture, what Blender said is in it, for whoever looks at the artifacts.
          writeFileSync(request.png.replace(/\.png$/, '.json'), `${JSON.stringify(request, null, 2)}\n`);
        }
        const done = path.join(dir, name.replace(/\.request\.json$/, '.done.json'));
        writeFileSync(`${done}.partial`, JSON.stringify({ ok, error: ok ? undefined : tail(shot, 5) }));
        renameSync(`${done}.partial`, done);
      }
      await sleep(50);
    }
  })();
  return {
    async stop() {
      stopped = true;
      await loop;
      return handled;
    },
  };
}

/**
 * Installs the built zip as a Blender 4.2+ extension the way the README tells users to
 * (`blender --command extension install-file -r user_default -e FILE.zip`), into the
 * BLENDER_USER_EXTENSIONS of `env`, enabled in the preferences saved in its BLENDER_USER_CONFIG.
 */
export async function installExtension(zip: string, env: NodeJS.ProcessEnv): Promise<RunResult> {
  return run(blender, ['--command', 'extension', 'install-file', '-r', 'user_default', '-e', zip], {
    env,
    timeoutMs: 120_000,
  });
}

/** Blender's version as [major, minor] (from `blender --version`). */
export function blenderRelease(): [number, number] {
  const match = /Blender (\d+)\.(\d+)/.exec(blenderVersion());
  if (!match) throw new Error(`cannot read a version from "${blenderVersion()}"`);
  return [Number(match[1]), Number(match[2])];
}

/** When Blender crashed, the report it wrote (its temp folder is removed at teardown). */
function crashReport(result: RunResult): { crash?: string } {
  const written = /Writing: (\S+\.crash\.txt)/.exec(result.stdout + result.stderr)?.[1];
  if (!written || !existsSync(written)) return {};
  return { crash: readFileSync(written, 'utf8').slice(0, 20_000) };
}

/** Builds the add-on zip with blender-addon/build.py into `output`. */
export async function buildAddonZip(output: string): Promise<RunResult> {
  return run('python3', [path.join(addonRoot, 'build.py'), '--output', output], { timeoutMs: 60_000 });
}

function displayInUse(display: number): boolean {
  return existsSync(`/tmp/.X11-unix/X${display}`) || existsSync(`/tmp/.X${display}-lock`);
}

/** Starts Xvfb on a free display number and stops it (by pid) when the test ends. */
export async function startXvfb(t: Test): Promise<string> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const display = 100 + Math.floor(Math.random() * 800);
    if (displayInUse(display)) continue;
    const server = spawn('Xvfb', [`:${display}`, '-screen', '0', '1600x1000x24', '-nolisten', 'tcp'], {
      stdio: 'ignore',
    });
    let exited = false;
    server.once('exit', () => (exited = true));
    const deadline = Date.now() + 10_000;
    while (!exited && Date.now() < deadline && !existsSync(`/tmp/.X11-unix/X${display}`)) await sleep(50);
    if (!exited && existsSync(`/tmp/.X11-unix/X${display}`)) {
      t.teardown(async () => {
        if (!exited && server.pid) process.kill(server.pid, 'SIGTERM');
        const stopDeadline = Date.now() + 5000;
        while (!exited && Date.now() < stopDeadline) await sleep(50);
        if (!exited && server.pid) process.kill(server.pid, 'SIGKILL');
      });
      return `:${display}`;
    }
    if (!exited && server.pid) process.kill(server.pid, 'SIGKILL');
  }
  throw new Error('could not start Xvfb on a free display');
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Stops the daemon a test let Blender start (`skyfarm daemon start`), found by its daemon.json. */
export async function stopDaemonIn(stateDir: string): Promise<void> {
  const infoPath = path.join(stateDir, 'daemon.json');
  if (!existsSync(infoPath)) return;
  const { pid } = JSON.parse(readFileSync(infoPath, 'utf8')) as { pid: number };
  if (!alive(pid)) return;
  process.kill(pid, 'SIGTERM');
  const deadline = Date.now() + 15_000;
  while (alive(pid) && Date.now() < deadline) await sleep(100);
  if (alive(pid)) process.kill(pid, 'SIGKILL');
}

/**
 * A state dir for a daemon that Blender starts itself (`skyfarm daemon start`). It lives outside the
 * tap fixture so the teardown can still read daemon.json and stop that daemon before the folder goes.
 */
export function daemonHomeStartedByBlender(t: Test): string {
  const home = mkdtempSync(path.join(tmpdir(), 'skyfarm-home-'));
  t.teardown(async () => {
    await stopDaemonIn(home);
    rmSync(home, { recursive: true, force: true });
  });
  return home;
}

/** A folder for files a human should look at after the run (screenshots). */
export function artifactsDir(name: string): string {
  const dir = path.join(artifactsRoot, name);
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** Whether Blender runs here; CI installs it, so a missing Blender fails loudly rather than skipping. */
let versionLine: string | undefined;
export function blenderVersion(): string {
  if (versionLine !== undefined) return versionLine;
  const result = spawnSync(blender, ['--version'], { encoding: 'utf8', timeout: 60_000 });
  if (result.status !== 0) throw new Error(`"${blender} --version" failed: install Blender or set SKYFARM_BLENDER`);
  versionLine = result.stdout.split('\n')[0] ?? '';
  return versionLine;
}
