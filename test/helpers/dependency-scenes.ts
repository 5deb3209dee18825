// Dependency scenes built by the Blender under test (test/helpers/dependency_scenes.py), and the
// comparison the dependency tests make: what Blender opens while it renders every frame (strace)
// against what skyfarm collects (the probe's list and the uploaded manifest).
import { mkdtempSync, rmSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Test } from 'tap';
import { blenderEnv, run, startXvfb, tail } from '../../blender-addon/tests/harness.js';
import { probeBlend, renderChunk, type ProbeResult } from '../../daemon/src/render/blender.js';
import { materializeProject, remapsInto } from '../../daemon/src/project/materialize.js';
import type { Manifest } from '../../daemon/src/project/manifest.js';
import { LocalObjectStore } from '../../daemon/src/store/local-store.js';
import { cliEnv, runCli } from './cli.js';
import { blenderCommand, blenderVersion } from './scenes.js';
import { readTraces, traceRun, tracingWrapper, type FileTrace } from './file-trace.js';

const BUILDER = path.join(path.dirname(fileURLToPath(import.meta.url)), 'dependency_scenes.py');

export interface BuiltScene {
  /** The shot to render. */
  blend: string;
  /** Folders whose files count (the project and the folders outside it the scene uses). */
  roots: string[];
  /** Files the scene names that are not there (the probe must report exactly these missing). */
  missing?: string[];
  /** Anything else the builder says about the scene. */
  [key: string]: unknown;
}

/** Builds one of dependency_scenes.py's scenes under `base` with the Blender under test. */
export async function buildDependencyScene(
  t: Test,
  scene: string,
  base: string,
  options: Record<string, unknown> = {},
): Promise<BuiltScene> {
  const result = await run(
    blenderCommand,
    [
      '-b',
      '--factory-startup',
      '--python-exit-code',
      '1',
      '--python',
      BUILDER,
      '--',
      JSON.stringify({ ...options, scene, base }),
    ],
    { env: blenderEnv(t), timeoutMs: 300_000 },
  );
  const line = result.stdout.split('\n').find((text) => text.startsWith('SKYFARM_SCENES '));
  if (result.code !== 0 || !line) throw new Error(`building ${scene} failed:\n${tail(result)}`);
  return JSON.parse(line.slice('SKYFARM_SCENES '.length)) as BuiltScene;
}

/**
 * Bakes every Ocean modifier of each file in a windowed Blender under Xvfb and saves the file: the
 * bake is a WM job that only becomes "baked" in Blender's event loop (`-b` writes the maps but leaves
 * the modifier unbaked, as if the user had never baked).
 */
export async function bakeOceans(t: Test, files: string[]): Promise<void> {
  const display = await startXvfb(t);
  for (const file of files) {
    const result = await run(
      blenderCommand,
      ['--factory-startup', file, '--python', BUILDER, '--', JSON.stringify({ bakeOceans: true })],
      { env: blenderEnv(t, { DISPLAY: display }), timeoutMs: 180_000 },
    );
    if (!/SKYFARM_OCEANS_BAKED/.test(result.stdout)) {
      throw new Error(`baking the oceans of ${file} failed:\n${tail(result)}`);
    }
  }
}

/**
 * False when this Blender bakes a tiny smoke domain, three times in a row, else why it cannot: Debian
 * trixie's 4.3 aborts in Mantaflow (PyImport_AppendInittab); Debian's 3.4 fails most bakes on this
 * machine at random ("'NoneType' object has no attribute 'getDataPointer'" in Mantaflow's script),
 * which would make a fluid scene fail now and then instead of testing anything.
 */
export async function fluidWorks(t: Test): Promise<string | false> {
  // Debian 12's 3.4 fails most Mantaflow bakes at random ("'NoneType' object has no attribute
  // 'getDataPointer'", then Manta::Error), about 5 in 6 here: three lucky test bakes in a row were
  // followed by a failing scene bake in a clean-clone run. Decided by version, so it never flickers.
  if (blenderVersion && Number(blenderVersion.split('.')[0]) < 4) {
    return `Blender ${blenderVersion}'s Mantaflow fails most fluid bakes at random on this machine; fluid and volume caches are checked with the newer Blenders`;
  }
  const base = mkdtempSync(path.join(tmpdir(), 'skyfarm-fluid-'));
  t.teardown(() => rmSync(base, { recursive: true, force: true }));
  for (let attempt = 1; attempt <= 3; attempt++) {
    try {
      await buildDependencyScene(t, 'fluid-check', path.join(base, String(attempt)));
    } catch (error) {
      const text = String((error as Error).message);
      const reason =
        /Fatal Python error: .*|AttributeError: .*|Manta::Error.*/.exec(text)?.[0] ?? text.slice(-300);
      return `this Blender cannot bake a fluid simulation reliably here (bake ${attempt} of 3: ${reason.trim()})`;
    }
  }
  return false;
}

function within(file: string, roots: string[]): boolean {
  return roots.some((root) => file === root || file.startsWith(root + path.sep));
}

/** Every file below `folders` (recursively). */
export async function filesUnder(folders: string[]): Promise<Set<string>> {
  const files = new Set<string>();
  for (const folder of folders) {
    const entries = await readdir(folder, { recursive: true, withFileTypes: true }).catch(() => []);
    for (const entry of entries) {
      if (entry.isFile()) files.add(path.join(entry.parentPath, entry.name));
    }
  }
  return files;
}

/**
 * Renders every frame of the scene's range with plain `blender -b FILE -a` under strace. What the
 * render writes into the project (Blender simulates an unbaked cache of a linked object into its
 * library's cache folder) is removed afterwards, so the project is as the user left it.
 */
export async function traceBlenderRender(t: Test, scene: BuiltScene, outputDir: string): Promise<FileTrace> {
  const before = await filesUnder(scene.roots);
  const traced = await traceRun(
    blenderCommand,
    ['-b', scene.blend, '-o', path.join(outputDir, 'frame_####'), '-a'],
    { env: blenderEnv(t), timeoutMs: 600_000 },
  );
  for (const file of await filesUnder(scene.roots)) if (!before.has(file)) await rm(file);
  if (traced.code !== 0) throw new Error(`rendering ${scene.blend} failed:\n${traced.output.slice(-3000)}`);
  const keep = (files: Set<string>) =>
    new Set([...files].filter((file) => within(file, scene.roots) && !within(file, [outputDir])));
  return {
    read: keep(traced.read),
    notFound: keep(traced.notFound),
    written: keep(traced.written),
    listed: keep(traced.listed),
  };
}

export function probeScene(scene: BuiltScene): Promise<ProbeResult> {
  return probeBlend(blenderCommand, scene.blend);
}

type StoredManifest = Manifest;

export interface Upload {
  code: number | null;
  /** `skyfarm upload --json`'s answer (or its error). */
  result: {
    files?: number;
    missing?: string[];
    manifest?: { key: string; root: string };
    error?: { code: string; message: string };
  };
  /** The source file of every manifest entry (a tree path mapped back to this machine). */
  sources: Set<string>;
  manifest?: StoredManifest;
}

/** `skyfarm upload FILE --json` on the local backend, and the manifest it stored. */
export async function uploadScene(
  t: Test,
  scene: BuiltScene,
  home: string,
  extraArgs: string[] = [],
): Promise<Upload> {
  const env = cliEnv(t, home, { SKYFARM_BLENDER: blenderCommand });
  const cli = await runCli(['upload', scene.blend, '--json', ...extraArgs], { env, timeoutMs: 300_000 });
  const result = JSON.parse(cli.stdout) as Upload['result'];
  if (!result.manifest) return { code: cli.code, result, sources: new Set() };
  const manifest = JSON.parse(
    await readFile(path.join(home, 'store', result.manifest.key), 'utf8'),
  ) as StoredManifest;
  return { code: cli.code, result, sources: manifestSources(manifest), manifest };
}

/** Where each file of a manifest came from: `_external/<absolute path>`, else below the root. */
export function manifestSources(manifest: StoredManifest): Set<string> {
  const root = manifest.root ?? '/';
  return new Set(
    Object.keys(manifest.files).map((tree) =>
      tree.startsWith('_external/')
        ? path.normalize('/' + tree.slice('_external/'.length))
        : path.join(root, ...tree.split('/')),
    ),
  );
}

/**
 * Files skyfarm rightly uploads that a render of the scene's frames does not open, each with the
 * reason; anything else uploaded and not opened is a defect.
 */
export function uploadedNotOpened(file: string, firstFrame = 1): string | undefined {
  const frame = /_(-?\d+)(?:_\d+)?\.bphys$/.exec(file)?.[1];
  if (frame !== undefined && Number(frame) <= firstFrame) {
    return 'a simulation cache frame at or before the first frame: particles bake the frame before it, cloth and soft body start from their rest state there; a render that starts earlier or interpolates reads it';
  }
  if (/\.wav$/.test(file)) return 'a sound: Blender reads it only when the output is a movie with audio';
  return undefined;
}

/**
 * The file-by-file comparison: every file Blender opened is uploaded (nothing missing), everything
 * uploaded is opened (or uploadedNotOpened says why not), the probe lists the same files, and what
 * skyfarm reports missing is exactly `expectedMissing`, each a file Blender looked for.
 */
export function compareWithBlender(
  t: Test,
  options: {
    trace: FileTrace;
    probe: ProbeResult;
    upload: Upload;
    expectedMissing: string[];
  },
): void {
  const { trace, probe, upload } = options;
  const probed = new Set(probe.dependencies.filter((d) => !d.missing).map((d) => path.normalize(d.path)));
  probed.add(path.normalize(probe.blendFile));
  const unexpected = [...trace.read].filter((file) => !upload.sources.has(file)).sort();
  t.same(unexpected, [], 'every file Blender opened while rendering is in the upload');
  const unread = [...upload.sources]
    .filter((file) => !trace.read.has(file) && !uploadedNotOpened(file))
    .sort();
  t.same(unread, [], 'every uploaded file is one Blender opened while rendering');
  t.same([...upload.sources].sort(), [...probed].sort(), "the upload is the probe's list, file by file");
  const reported = (upload.result.missing ?? []).map((file) => path.normalize(file)).sort();
  t.same(reported, [...options.expectedMissing].sort(), 'missing: exactly the files that are not there');
  const probedMissing = probe.dependencies.filter((d) => d.missing).map((d) => path.normalize(d.path));
  t.same(probedMissing.sort(), [...options.expectedMissing].sort(), 'the probe marks the same missing');
  for (const file of options.expectedMissing) {
    // A point cache's frames are found by listing its folder; other files are opened or stat'ed.
    const looked = trace.notFound.has(file) || trace.listed.has(path.dirname(file));
    t.ok(looked, `Blender looked for the missing ${path.basename(file)} too`);
  }
}

/** The add-on's own list (dependencies.collect() in the Blender session of the file). */
export async function addonDependencies(
  t: Test,
  blend: string,
): Promise<{ path: string; kind: string; missing: boolean; relative: boolean }[]> {
  const module = path.resolve(
    path.dirname(BUILDER),
    '..',
    '..',
    'blender-addon',
    'skyfarm',
    'dependencies.py',
  );
  const script =
    'import importlib.util, json\n' +
    `spec = importlib.util.spec_from_file_location("deps", ${JSON.stringify(module)})\n` +
    'deps = importlib.util.module_from_spec(spec)\nspec.loader.exec_module(deps)\n' +
    'print("SKYFARM_ADDON " + json.dumps([d.to_message() for d in deps.collect(use_cache=False)]))\n';
  const result = await run(
    blenderCommand,
    ['-b', blend, '--python-exit-code', '1', '--python-expr', script],
    {
      env: blenderEnv(t),
      timeoutMs: 120_000,
    },
  );
  const line = result.stdout.split('\n').find((text) => text.startsWith('SKYFARM_ADDON '));
  if (!line) throw new Error(`the add-on's collect() failed:\n${tail(result)}`);
  return JSON.parse(line.slice('SKYFARM_ADDON '.length)) as {
    path: string;
    kind: string;
    missing: boolean;
    relative: boolean;
  }[];
}

/** What the render of a job's copy opened, as the farm would run it. */
export interface FarmRender {
  /** Frames rendered, and the ones that failed with Blender's message. */
  done: number[];
  failed: Array<{ frame: number; message: string }>;
  /** Tree paths (`/`-separated, as in the manifest) of the project files the render read. */
  read: Set<string>;
  /** Source path → tree path, from the manifest. */
  tree: Map<string, string>;
  /** The SKYFARM_MISSING lines of the render, as tree paths. */
  missing: string[];
  /** The project root on this machine. */
  root: string;
}

/**
 * The farm, on this machine: `skyfarm upload` stores the project, the scene's folders are then moved
 * away (a farm has none of them), the copy stage lays the manifest out as the job's project folder
 * and render_chunk.py renders every frame there with the manifest's remaps, Blender under strace.
 * Whatever the Remapper misses is not found, as on AWS.
 */
export async function farmRender(t: Test, scene: BuiltScene, base: string): Promise<FarmRender> {
  const home = path.join(base, 'farm-home');
  const upload = await uploadScene(t, scene, home);
  if (!upload.manifest) throw new Error(`the upload failed: ${JSON.stringify(upload.result)}`);
  const manifest = upload.manifest;
  const away = scene.roots.map((root) => `${root}.away`);
  for (const [index, root] of scene.roots.entries()) await rename(root, away[index]!);
  try {
    const project = path.join(base, 'farm-job', 'project');
    const blendFile = await materializeProject(
      new LocalObjectStore(path.join(home, 'store')),
      manifest,
      project,
    );
    const logDir = path.join(base, 'farm-traces');
    await mkdir(logDir, { recursive: true });
    const marker = 'render_chunk.py';
    const blender = await tracingWrapper(path.join(base, 'traced-blender'), blenderCommand, logDir, marker);
    const lines: string[] = [];
    const result = await renderChunk({
      blender,
      blendFile,
      scene: 'Scene',
      frames: [1, 2, 3],
      outputDir: path.join(base, 'farm-frames'),
      filePattern: 'frame_####',
      remaps: remapsInto(manifest, project),
      onEvent: () => {},
      onLine: (line) => lines.push(line),
    });
    const traces = await readTraces(logDir);
    const relative = (file: string) => path.relative(project, file).split(path.sep).join('/');
    const tree = new Map<string, string>();
    const sources = [...manifestSources(manifest)];
    Object.keys(manifest.files).forEach((key, index) => tree.set(sources[index]!, key));
    return {
      done: result.done,
      failed: result.failed,
      read: new Set([...traces.read].filter((file) => within(file, [project])).map(relative)),
      tree,
      missing: lines
        .filter((line) => line.startsWith('SKYFARM_MISSING '))
        .map((line) => relative(line.slice('SKYFARM_MISSING '.length))),
      root: manifest.root ?? '/',
    };
  } finally {
    for (const [index, root] of scene.roots.entries()) await rename(away[index]!, root);
  }
}

/**
 * The farm check: every frame renders, Blender read each file it read rendering the original from
 * the job's copy (mapped through the manifest), and it logs exactly the missing files as missing.
 */
export function compareFarmRender(
  t: Test,
  farm: FarmRender,
  reference: FileTrace,
  expectedMissing: string[],
): void {
  t.same(farm.failed, [], 'no frame failed');
  t.same(farm.done, [1, 2, 3], 'every frame rendered on the farm');
  const notFound = [...reference.read]
    .map((file) => farm.tree.get(file) ?? `(not in the manifest) ${file}`)
    .filter((tree) => !farm.read.has(tree))
    .sort();
  t.same(notFound, [], "the farm's Blender read every file Blender read rendering the original, in the job");
  const missingTree = expectedMissing.map((file) =>
    within(file, [farm.root]) ? path.relative(farm.root, file).split(path.sep).join('/') : `_external${file}`,
  );
  t.same(farm.missing.sort(), missingTree.sort(), 'SKYFARM_MISSING lists exactly the missing files');
}
