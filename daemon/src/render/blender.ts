// Runs Blender: finds it, probes a .blend (daemon/blender/probe.py) and renders a chunk of frames
// (daemon/blender/render_chunk.py). Every Blender runs in its own process group so that a cancel
// or a timeout ends it together with anything it started.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { access, constants, mkdir, mkdtemp, open, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import { fileURLToPath } from 'node:url';
import { SkyfarmError } from '../errors.js';
import { blenderErrorText, parseBlenderLine, type BlenderEvent } from './progress.js';
import type { WarmBlender } from './warm-blender.js';

export type BlenderVersion = [number, number, number];
export interface BlenderInstall {
  path: string;
  version: BlenderVersion;
}

export const MIN_BLENDER_VERSION: BlenderVersion = [3, 4, 0];
export const VERSION_TIMEOUT_MS = 30_000;
export const PROBE_TIMEOUT_MS = 120_000;
/** Time between SIGTERM and SIGKILL when a Blender run is canceled or times out. */
export const KILL_GRACE_MS = 5_000;

const INSTALL_HINT =
  'Install Blender 3.4 or newer ("sudo apt-get install blender" on Debian/Ubuntu, or download it from ' +
  'https://www.blender.org/download/), or set SKYFARM_BLENDER to the path of the blender executable.';

// ---------------------------------------------------------------------------------------------
// Locating the Python scripts (works from daemon/src/render/*.ts under tsx and from dist/…/*.js).

let scriptsDir: string | undefined;

/** The folder holding probe.py and render_chunk.py. */
export function blenderScriptsDir(): string {
  if (scriptsDir) return scriptsDir;
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (true) {
    const candidate = path.join(dir, 'daemon', 'blender');
    if (existsSync(path.join(candidate, 'probe.py'))) return (scriptsDir = candidate);
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error('daemon/blender/probe.py not found above ' + import.meta.url);
    dir = parent;
  }
}

export function blenderScript(name: 'probe.py' | 'render_chunk.py' | 'merge_frame.py'): string {
  return path.join(blenderScriptsDir(), name);
}

// ---------------------------------------------------------------------------------------------
// findBlender

async function isExecutableFile(file: string): Promise<boolean> {
  try {
    await access(file, constants.X_OK);
    return (await stat(file)).isFile();
  } catch {
    return false;
  }
}

export async function resolveExecutable(command: string, env: NodeJS.ProcessEnv): Promise<string | null> {
  if (command.includes('/') || command.includes(path.sep)) {
    const absolute = path.resolve(command);
    return (await isExecutableFile(absolute)) ? absolute : null;
  }
  for (const dir of (env.PATH ?? '').split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.resolve(dir, command);
    if (await isExecutableFile(candidate)) return candidate;
  }
  return null;
}

export function compareVersions(a: BlenderVersion, b: BlenderVersion): number {
  for (let index = 0; index < 3; index += 1) {
    const difference = a[index]! - b[index]!;
    if (difference !== 0) return difference;
  }
  return 0;
}

/** Finds Blender (`SKYFARM_BLENDER`, else `blender` on PATH) and checks that it runs and is new enough. */
export async function findBlender(env: NodeJS.ProcessEnv = process.env): Promise<BlenderInstall> {
  const configured = env.SKYFARM_BLENDER?.trim();
  const command = configured || 'blender';
  const where = configured ? `SKYFARM_BLENDER=${configured}` : '"blender" on PATH';
  const executable = await resolveExecutable(command, env);
  if (!executable) throw new SkyfarmError('BLENDER_MISSING', `Blender not found (${where}). ${INSTALL_HINT}`);

  let version: BlenderVersion | null = null;
  const run = await runBlender(executable, ['--version'], {
    env,
    timeoutMs: VERSION_TIMEOUT_MS,
    onLine: (line) => {
      const event = parseBlenderLine(line);
      if (event?.type === 'version' && !version) version = event.version;
    },
  }).catch((error: unknown) => {
    throw new SkyfarmError(
      'BLENDER_MISSING',
      `${executable} could not be started (${where}): ${errorText(error)}`,
    );
  });
  if (run.timedOut) {
    throw new SkyfarmError(
      'BLENDER_MISSING',
      `${executable} did not answer "--version" within ${VERSION_TIMEOUT_MS / 1000} s. ${INSTALL_HINT}`,
    );
  }
  if (!version || run.exitCode !== 0) {
    throw new SkyfarmError(
      'BLENDER_MISSING',
      `${executable} is not a working Blender ("--version" ${exitText(run)}${tailText(run)}). ${INSTALL_HINT}`,
    );
  }
  const found: BlenderVersion = version;
  if (compareVersions(found, MIN_BLENDER_VERSION) < 0) {
    throw new SkyfarmError(
      'BLENDER_TOO_OLD',
      `${executable} is Blender ${found.join('.')}; skyfarm needs ${MIN_BLENDER_VERSION.slice(0, 2).join('.')} ` +
        `or newer. ${INSTALL_HINT}`,
    );
  }
  rememberBlenderVersion(executable, found);
  return { path: executable, version: found };
}

// ---------------------------------------------------------------------------------------------
// What a render needs to say how far it is, per Blender version

/** The version each Blender executable answered (findBlender, or the daemon's remembered check). */
const knownVersions = new Map<string, BlenderVersion>();

export function rememberBlenderVersion(executable: string, version: BlenderVersion): void {
  knownVersions.set(executable, version);
}

/** The version `executable` answered in this process, if it was asked. */
export function knownBlenderVersion(executable: string): BlenderVersion | undefined {
  return knownVersions.get(executable);
}

/**
 * The flags that make Blender print its render status lines (frame, Cycles/Eevee samples) during a
 * render started from Python (render_chunk.py). 5.0 moved them into its log, category `render`,
 * which only `-f`/`-a` turn on by themselves: `--log render`. 3.4 and 4.x print them anyway, and
 * `--log render` changes nothing there (compared on 3.4.1 and 4.3.2), so they do without it. A
 * version not known (yet) gets it: harmless before 5.0, needed after.
 */
export function renderLogArgs(version: BlenderVersion | undefined): string[] {
  return version !== undefined && version[0] < 5 ? [] : ['--log', 'render'];
}

// ---------------------------------------------------------------------------------------------
// Running Blender

export interface BlenderRun {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  aborted: boolean;
  /** The last lines of output (stdout and stderr interleaved as they arrived). */
  tail: string[];
  /** The last error lines (Blender `Error:` lines and Python exception lines). */
  errors: string[];
}

interface RunOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  signal?: AbortSignal;
  timeoutMs?: number;
  onLine?: (line: string, stream: 'stdout' | 'stderr') => void;
  /** Called with Blender's pid (= its process group id) once it runs, so a caller can record it. */
  onSpawn?: (pid: number) => void;
  /** A Blender already started (render/warm-blender.ts, stdio all pipes) to use instead of spawning. */
  started?: ChildProcess;
  /** Written to Blender's stdin, which is then closed (only with `started`). */
  input?: string;
}

const TAIL_LINES = 40;
const ERROR_LINES = 10;

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // ESRCH: the group is already gone.
  }
}

function pushBounded(list: string[], line: string, limit: number): void {
  list.push(line);
  if (list.length > limit) list.shift();
}

/**
 * Spawns Blender in its own process group and feeds every output line to `onLine`. Resolves when
 * Blender has exited and its output is drained; rejects only when it cannot be started.
 */
export function runBlender(blender: string, args: string[], options: RunOptions = {}): Promise<BlenderRun> {
  return new Promise((resolve, reject) => {
    const result: BlenderRun = {
      exitCode: null,
      signal: null,
      timedOut: false,
      aborted: false,
      tail: [],
      errors: [],
    };
    const child =
      options.started ??
      spawn(blender, args, {
        cwd: options.cwd,
        env: options.env ?? process.env,
        detached: true,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
    if (child.pid !== undefined) options.onSpawn?.(child.pid);
    if (options.started) child.stdin?.end(options.input ?? '');
    let killTimer: NodeJS.Timeout | undefined;
    let timeoutTimer: NodeJS.Timeout | undefined;
    const stop = () => {
      if (child.pid === undefined || killTimer || child.exitCode !== null || child.signalCode !== null)
        return;
      killGroup(child.pid, 'SIGTERM');
      const pid = child.pid;
      killTimer = setTimeout(() => killGroup(pid, 'SIGKILL'), KILL_GRACE_MS);
    };
    const onAbort = () => {
      result.aborted = true;
      stop();
    };
    const cleanup = () => {
      clearTimeout(killTimer);
      clearTimeout(timeoutTimer);
      options.signal?.removeEventListener('abort', onAbort);
    };

    const handleLine = (line: string, stream: 'stdout' | 'stderr') => {
      pushBounded(result.tail, line, TAIL_LINES);
      const event = parseBlenderLine(line);
      if (event?.type === 'error') pushBounded(result.errors, blenderErrorText(event), ERROR_LINES);
      options.onLine?.(line, stream);
    };
    for (const stream of ['stdout', 'stderr'] as const) {
      const decoder = new StringDecoder('utf8');
      let pending = '';
      const readable = child[stream];
      if (!readable) continue;
      readable.on('data', (chunk: Buffer) => {
        pending += decoder.write(chunk);
        const lines = pending.split('\n');
        pending = lines.pop() ?? '';
        for (const line of lines) handleLine(line.replace(/\r$/, ''), stream);
      });
      readable.on('end', () => {
        pending += decoder.end();
        if (pending) handleLine(pending, stream);
        pending = '';
      });
    }

    child.on('error', (error) => {
      cleanup();
      reject(error);
    });
    child.on('close', (code, signal) => {
      cleanup();
      result.exitCode = code;
      result.signal = signal;
      resolve(result);
    });
    if (child.pid === undefined) return; // 'error' follows
    if (options.signal?.aborted) onAbort();
    else options.signal?.addEventListener('abort', onAbort, { once: true });
    if (options.timeoutMs !== undefined) {
      timeoutTimer = setTimeout(() => {
        result.timedOut = true;
        stop();
      }, options.timeoutMs);
    }
  });
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function exitText(run: BlenderRun): string {
  if (run.timedOut) return 'timed out';
  if (run.signal) return `was killed by ${run.signal}`;
  return `exited with code ${run.exitCode}`;
}

function tailText(run: BlenderRun): string {
  const lines = run.errors.length > 0 ? run.errors : run.tail.filter((line) => line.trim() !== '').slice(-5);
  return lines.length > 0 ? `: ${lines.join(' / ')}` : '';
}

// ---------------------------------------------------------------------------------------------
// probeBlend

export interface ProbeScene {
  name: string;
  frameStart: number;
  frameEnd: number;
  frameStep: number;
  frameCurrent: number;
  /** scene.camera is set, or a timeline marker binds a camera. */
  hasCamera: boolean;
  camera: string | null;
  engine: string;
  resolutionX: number;
  resolutionY: number;
  resolutionPercentage: number;
  /** scene.render.filepath as stored (often `//render/frame_####`). */
  outputPath: string;
  /** outputPath resolved as Blender does (`//` is the .blend's folder); keeps a trailing separator. */
  outputPathAbsolute: string;
  fileFormat: string;
  /** scene.render.file_extension, e.g. `.png`. */
  fileExtension: string;
  useFileExtension: boolean;
  /** Movie formats write one file and cannot be split into chunks. */
  isMovie: boolean;
  /** Where Blender itself writes the frames (probe.py output_names, from scene.render.frame_path). */
  output: {
    /** Blender's path for frameStart; relative when the output path is (a plain `render/`). */
    framePath: string;
    dir: string;
    /** Blender's file name with the frame number as `#`s (`####.png`); null when it cannot be written so. */
    pattern: string | null;
  };
  /**
   * Whether the scene's frames can be split across machines (daemon/blender/split_rules.py): the
   * samples a frame renders, and why it cannot be split (absent in probes cached by older versions).
   */
  split?: {
    samples: number;
    /** This Blender splits the frame into bands of its `rows` rows (split_rules.py splits_by_rows). */
    bands?: boolean;
    rows?: number;
    problems: Array<{ code: string; message: string }>;
  };
}

export interface ProbeDependency {
  /** Absolute path (linked-library paths resolved against their library). */
  path: string;
  /** library, image, movieclip, sound, font, volume, cache, text, or file (anything else). */
  kind: string;
  missing: boolean;
  /** Stored as `//…` in the .blend (or library) that uses it: must keep its place relative to it. */
  relative: boolean;
}

export interface ProbeResult {
  blenderVersion: BlenderVersion;
  blendFile: string;
  scenes: string[];
  scene: ProbeScene;
  /** Every external file, from bpy.utils.blend_paths() plus linked libraries; packed files excluded. */
  dependencies: ProbeDependency[];
  /** Folders whose listing decided the dependency list (sequences, UDIM tiles, point caches). */
  scannedDirs?: string[];
}

interface RawProbe extends Omit<ProbeResult, 'scene'> {
  sceneFound: boolean;
  scene: ProbeScene | null;
}

/** The command line that runs probe.py on `file`. */
export function probeArgs(file: string, scene?: string): string[] {
  return [
    '-b',
    '--python-exit-code',
    '3',
    file,
    '--python',
    blenderScript('probe.py'),
    '--',
    JSON.stringify(scene ? { scene } : {}),
  ];
}

const BLEND_MAGIC = [
  Buffer.from('BLENDER'),
  Buffer.from([0x1f, 0x8b]),
  Buffer.from([0x28, 0xb5, 0x2f, 0xfd]),
];

/** Checks that `file` exists and starts like a .blend (plain, gzip- or zstd-compressed). */
export async function assertBlendFile(file: string): Promise<void> {
  let handle;
  try {
    handle = await open(file, 'r');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR')
      throw new SkyfarmError('FILE_NOT_FOUND', `${file} does not exist`);
    throw new SkyfarmError('FILE_NOT_FOUND', `${file} cannot be read: ${errorText(error)}`);
  }
  try {
    if (!(await handle.stat()).isFile()) throw new SkyfarmError('NOT_A_BLEND', `${file} is not a file`);
    const head = Buffer.alloc(7);
    const { bytesRead } = await handle.read(head, 0, head.length, 0);
    const isBlend = BLEND_MAGIC.some(
      (magic) => bytesRead >= magic.length && head.subarray(0, magic.length).equals(magic),
    );
    if (!isBlend) throw new SkyfarmError('NOT_A_BLEND', `${file} is not a Blender .blend file`);
  } finally {
    await handle.close();
  }
}

/** Reads scene settings and dependencies of a .blend without rendering. */
export async function probeBlend(
  blender: string,
  file: string,
  scene?: string,
  options: {
    signal?: AbortSignal;
    timeoutMs?: number;
    env?: NodeJS.ProcessEnv;
    /** For the daemon's probe cache (render/probe-cache.ts): false for a one-off file. */
    remember?: boolean;
  } = {},
): Promise<ProbeResult> {
  const absoluteFile = path.resolve(file);
  await assertBlendFile(absoluteFile);
  let probe: RawProbe | undefined;
  const run = await runBlender(blender, probeArgs(absoluteFile, scene), {
    env: options.env,
    signal: options.signal,
    timeoutMs: options.timeoutMs ?? PROBE_TIMEOUT_MS,
    onLine: (line) => {
      const event = parseBlenderLine(line);
      if (event?.type === 'probe') probe = event.data as RawProbe;
    },
  }).catch((error: unknown) => {
    throw new SkyfarmError('BLENDER_MISSING', `${blender} could not be started: ${errorText(error)}`);
  });
  if (run.aborted) throw new SkyfarmError('CANCELED', `reading ${absoluteFile} was canceled`);
  if (run.exitCode !== 0 || !probe) {
    throw new SkyfarmError(
      'BLENDER_FAILED',
      `Blender could not read ${absoluteFile} (${exitText(run)}${run.timedOut ? ` after ${(options.timeoutMs ?? PROBE_TIMEOUT_MS) / 1000} s` : ''})${tailText(run)}`,
    );
  }
  if (!probe.sceneFound || !probe.scene) {
    throw new SkyfarmError(
      'SCENE_NOT_FOUND',
      `scene "${scene ?? ''}" not found in ${absoluteFile}; scenes: ${probe.scenes.join(', ')}`,
    );
  }
  return {
    blenderVersion: probe.blenderVersion,
    blendFile: probe.blendFile,
    scenes: probe.scenes,
    scene: probe.scene,
    dependencies: probe.dependencies,
    scannedDirs: probe.scannedDirs ?? [],
  };
}

// ---------------------------------------------------------------------------------------------
// renderChunk

export interface RenderChunkOptions {
  blender: string;
  blendFile: string;
  scene: string;
  frames: number[];
  outputDir: string;
  /** Blender's file name for a frame with the frame as `#`s (`frame_####.png`; probe's output.pattern). */
  filePattern: string;
  /** Absolute paths on the submitting machine → where the files are now. */
  remaps?: Record<string, string>;
  signal?: AbortSignal;
  onEvent: (event: BlenderEvent) => void;
  onLine?: (line: string) => void;
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Blender's `-t`: render threads (0 = all cores). */
  threads?: number;
  /** `gpu`: Cycles on OptiX, else CUDA; every frame fails when there is no GPU (never a CPU fallback). */
  device?: 'cpu' | 'gpu';
  /** Writes a small PNG of each rendered frame to `<previewDir>/<frame>.png` before announcing it. */
  previewDir?: string;
  /** Longest side of a preview in pixels (default 256). */
  previewSize?: number;
  /**
   * Renders part `part` of `parts` of every frame (a split frame, daemon/blender/split_rules.py) to
   * `<dir>/<frame>/<part>.exr` instead of the scene's output.
   */
  split?: { parts: number; part: number; dir: string };
  /**
   * Called with Blender's pid (its process group id) as soon as it runs, and for a Blender started
   * ahead, the mark its command line holds (a cold one's holds the .blend's path).
   */
  onSpawn?: (pid: number, mark?: string) => void;
  /**
   * Takes a Blender started ahead (render/warm-blender.ts) when one is ready for this executable;
   * not with `cwd`, `env` or `threads`, which must be given when Blender starts.
   */
  warm?: WarmBlender;
}

export interface RenderChunkResult {
  exitCode: number | null;
  signal: string | null;
  done: number[];
  skipped: number[];
  failed: Array<{ frame: number; message: string }>;
}

/**
 * render_chunk.py writes each frame to `<outputDir>/.skyfarm-tmp-<pid>-<name>` and renames it when
 * complete; a file with this prefix is never a finished frame (publishing skips dotfiles).
 */
export const PARTIAL_FRAME_PREFIX = '.skyfarm-tmp-';

/** JSON arguments larger than this go through a file: Linux limits one argument to 128 KiB. */
const INLINE_ARGS_LIMIT = 64 * 1024;

/** A frame file name pattern (Blender's name with the frame as `#`s) must stay inside its folder. */
export function assertFilePattern(filePattern: string): void {
  if (
    !filePattern ||
    filePattern.includes('/') ||
    filePattern.includes('\\') ||
    filePattern === '.' ||
    filePattern === '..' ||
    filePattern.includes('\0')
  ) {
    throw new SkyfarmError(
      'BAD_ARGUMENT',
      `the frame file name "${filePattern}" must be a plain file name (like frame_####.png), without a folder`,
    );
  }
}

/**
 * The command line that runs render_chunk.py; `scriptArg` is the JSON or `@file` holding it,
 * `version` Blender's (which log flags it needs: renderLogArgs).
 */
export function renderChunkArgs(
  blendFile: string,
  scriptArg: string,
  threads?: number,
  version?: BlenderVersion,
): string[] {
  return [
    '-b',
    ...renderLogArgs(version),
    '--python-exit-code',
    '1',
    blendFile,
    ...(threads !== undefined ? ['-t', String(threads)] : []),
    '--python',
    blenderScript('render_chunk.py'),
    '--',
    scriptArg,
  ];
}

/**
 * Renders `frames` of one scene with overwrite off. Resolves once Blender has exited (also after an
 * abort: then `signal` is set and unfinished frames are failed with "render canceled").
 */
export async function renderChunk(opts: RenderChunkOptions): Promise<RenderChunkResult> {
  if (opts.frames.length === 0 || !opts.frames.every((frame) => Number.isSafeInteger(frame))) {
    throw new SkyfarmError('BAD_ARGUMENT', 'a render chunk needs at least one whole frame number');
  }
  assertFilePattern(opts.filePattern);
  if (opts.signal?.aborted) {
    const failed = opts.frames.map((frame) => ({ frame, message: 'render canceled' }));
    return { exitCode: null, signal: null, done: [], skipped: [], failed };
  }
  const outputDir = path.resolve(opts.outputDir);
  await mkdir(outputDir, { recursive: true });

  const scriptArgs = {
    scene: opts.scene,
    frames: opts.frames,
    outputDir,
    filePattern: opts.filePattern,
    remaps: opts.remaps ?? {},
    ...(opts.device === 'gpu' ? { device: 'GPU' } : {}),
    ...(opts.previewDir !== undefined
      ? { previewDir: path.resolve(opts.previewDir), previewSize: opts.previewSize ?? 256 }
      : {}),
    ...(opts.split ? { split: { ...opts.split, dir: path.resolve(opts.split.dir) } } : {}),
  };
  const scriptJson = JSON.stringify(scriptArgs);
  const canUseWarm = opts.cwd === undefined && opts.env === undefined && opts.threads === undefined;
  const taken = canUseWarm ? opts.warm?.take(opts.blender) : undefined;
  const started = taken?.child;
  let argsDir: string | undefined;
  let scriptArg = scriptJson;
  if (!started && Buffer.byteLength(scriptJson) > INLINE_ARGS_LIMIT) {
    argsDir = await mkdtemp(path.join(tmpdir(), 'skyfarm-chunk-'));
    const argsFile = path.join(argsDir, 'args.json');
    await writeFile(argsFile, scriptJson, { mode: 0o600 });
    scriptArg = '@' + argsFile;
  }

  const done = new Set<number>();
  const skipped = new Set<number>();
  const failed = new Map<number, string>();
  // Error lines since the current frame started: the message for a frame Blender never reported.
  let frameErrors: string[] = [];
  const onLine = (line: string) => {
    opts.onLine?.(line);
    const event = parseBlenderLine(line);
    if (!event) return;
    switch (event.type) {
      case 'frameStart':
        frameErrors = [];
        break;
      case 'frameDone':
        done.add(event.frame);
        break;
      case 'frameSkipped':
        skipped.add(event.frame);
        break;
      case 'frameFailed':
        failed.set(event.frame, event.message);
        break;
      case 'error':
        pushBounded(frameErrors, blenderErrorText(event), ERROR_LINES);
        break;
      case 'crash':
        pushBounded(frameErrors, `Blender crashed (report: ${event.reportPath})`, ERROR_LINES);
        break;
    }
    opts.onEvent(event);
  };

  if (started) opts.onLine?.(`[skyfarm] rendering in a Blender started ahead (pid ${started.pid})`);
  let run: BlenderRun;
  try {
    run = await runBlender(
      opts.blender,
      renderChunkArgs(
        path.resolve(opts.blendFile),
        scriptArg,
        opts.threads,
        knownBlenderVersion(opts.blender),
      ),
      {
        cwd: opts.cwd,
        env: opts.env,
        signal: opts.signal,
        onLine,
        ...(opts.onSpawn ? { onSpawn: (pid: number) => opts.onSpawn?.(pid, taken?.mark) } : {}),
        // The warm Blender gets the .blend to open with its arguments (render_chunk.py `@stdin`).
        ...(started
          ? {
              started,
              input: JSON.stringify({ ...scriptArgs, blendFile: path.resolve(opts.blendFile) }) + '\n',
            }
          : {}),
      },
    ).catch((error: unknown) => {
      throw new SkyfarmError('BLENDER_MISSING', `${opts.blender} could not be started: ${errorText(error)}`);
    });
  } finally {
    if (argsDir) await rm(argsDir, { recursive: true, force: true });
  }

  const lastErrors = frameErrors.length > 0 ? frameErrors : run.errors;
  const unfinishedMessage = run.aborted
    ? 'render canceled'
    : `Blender ${exitText(run)} before finishing this frame` +
      (lastErrors.length > 0 ? `: ${lastErrors.join(' / ')}` : '');
  for (const frame of opts.frames) {
    if (!done.has(frame) && !skipped.has(frame) && !failed.has(frame)) failed.set(frame, unfinishedMessage);
  }
  return {
    exitCode: run.exitCode,
    signal: run.signal,
    done: opts.frames.filter((frame) => done.has(frame)),
    skipped: opts.frames.filter((frame) => skipped.has(frame)),
    failed: opts.frames
      .filter((frame) => failed.has(frame))
      .map((frame) => ({ frame, message: failed.get(frame) ?? unfinishedMessage })),
  };
}
