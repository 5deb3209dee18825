// Concurrency: 20 local jobs submitted at once from four clients — two DaemonClients, the `skyfarm`
// CLI (one process per job) and the Blender add-on's own Python client (blender-addon/skyfarm/
// connection.py, run by python3) — all complete, each frame lands in its own job's output folder,
// and none is mixed up: every scene renders a flat picture of its own colour, so a frame in the
// wrong folder, or rendered from the wrong scene, shows the wrong colour.
import t from 'tap';
import { execFile, spawnSync } from 'node:child_process';
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Job } from '../protocol/generated/protocol.js';
import { startTestDaemon, connectTestClient } from './helpers/daemon.js';
import { projectRoot, runCli } from './helpers/cli.js';
import { blenderCommand, blenderSkip, readPng } from './helpers/scenes.js';

const execFileAsync = promisify(execFile);
const JOBS = 20;

/** A distinct colour per scene (8-bit sRGB), at least 30 apart from every other in some channel. */
function colour(index: number): [number, number, number] {
  return [(index * 67 + 20) % 256, (index * 113 + 90) % 256, (index * 29 + 200) % 256];
}

// Runs once in Blender: writes JOBS scenes, each only a camera looking at a flat world colour, with
// dithering off and the Standard view transform, so every pixel is exactly the scene's colour.
const MAKE_SCENES_PY = String.raw`
import bpy, json, os, sys
args = json.loads(sys.argv[sys.argv.index("--") + 1])
bpy.context.preferences.filepaths.save_version = 0
scene = bpy.context.scene
for name in ("Cube", "Light"):
    bpy.data.objects.remove(bpy.data.objects[name])
render = scene.render
render.engine = "CYCLES"
render.resolution_x, render.resolution_y, render.resolution_percentage = 32, 18, 100
render.dither_intensity = 0
render.film_transparent = False
render.image_settings.file_format = "PNG"
render.image_settings.color_mode = "RGB"
render.filepath = "//out/c_####"
scene.cycles.device = "CPU"
scene.cycles.samples = 1
scene.cycles.use_denoising = False
scene.view_settings.view_transform = "Standard"
scene.view_settings.look = "None"
scene.view_settings.exposure = 0
scene.view_settings.gamma = 1
world = scene.world or bpy.data.worlds.new("World")
scene.world = world
world.use_nodes = True
background = world.node_tree.nodes["Background"]
background.inputs["Strength"].default_value = 1.0
def linear(c):
    c = c / 255.0
    return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4
for item in args:
    r, g, b = item["colour"]
    background.inputs["Color"].default_value = (linear(r), linear(g), linear(b), 1.0)
    scene.frame_start, scene.frame_end = 1, item["frames"]
    os.makedirs(os.path.dirname(item["path"]), exist_ok=True)
    bpy.ops.wm.save_as_mainfile(filepath=item["path"], copy=True)
print("SKYFARM_SCENES_SAVED", len(args))
`;

// The add-on's connection (bpy-free core) submitting scenes, as the Render button does.
const ADDON_CLIENT_PY = String.raw`
import importlib, importlib.machinery, importlib.util, json, os, sys, time
addon_dir, state_dir, blends = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
spec = importlib.machinery.ModuleSpec("skyfarm", None, is_package=True)
package = importlib.util.module_from_spec(spec)
package.__path__ = [addon_dir]
sys.modules["skyfarm"] = package
connection = importlib.import_module("skyfarm.connection")
conn = connection.DaemonConnection("blender-addon", "0.1.0", state_dir=lambda: state_dir)
conn.start()
deadline = time.monotonic() + 60
while not conn.status.connected and time.monotonic() < deadline:
    conn.drain(0.01)
    time.sleep(0.02)
if not conn.status.connected:
    print(json.dumps({"error": "not connected: %s" % (conn.status,)}))
    sys.exit(1)
replies = {}
for blend in blends:
    conn.request("render.submit", {"blendFile": blend}, lambda result, error, blend=blend: replies.__setitem__(blend, (result, error)))
deadline = time.monotonic() + 180
while len(replies) < len(blends) and time.monotonic() < deadline:
    conn.drain(0.01)
    time.sleep(0.02)
conn.stop()
out = {}
for blend in blends:
    result, error = replies.get(blend, (None, "no reply"))
    out[blend] = result["job"]["id"] if result else "error: %s" % (error,)
print(json.dumps(out))
`;

t.test('20 jobs at once from four clients: all complete, none mixed', { skip: blenderSkip }, async (t) => {
  const python = spawnSync('python3', ['--version']).status === 0;
  const dir = t.testdir({});
  const scenes = Array.from({ length: JOBS }, (_, index) => ({
    index,
    path: join(dir, `scene${index}`, 'scene.blend'),
    colour: colour(index),
    frames: index % 2 === 0 ? 2 : 1,
  }));
  await execFileAsync(
    blenderCommand,
    [
      '-b',
      '--factory-startup',
      '--python-exit-code',
      '1',
      '--python-expr',
      MAKE_SCENES_PY,
      '--',
      JSON.stringify(scenes),
    ],
    { timeout: 180_000, maxBuffer: 16 * 1024 * 1024 },
  );

  const home = join(dir, 'home');
  const daemon = await startTestDaemon(t, { stateDir: home });
  const first = await connectTestClient(t, daemon);
  const second = await connectTestClient(t, daemon);
  const seenBySecond = new Map<string, Job>();
  second.onEvent((event, data) => {
    if (event === 'job.update') seenBySecond.set((data as Job).id, data as Job);
  });

  // Who submits what: 6 + 5 from the two DaemonClients, 5 from CLI processes, 4 from the add-on's
  // Python client (or the CLI when python3 is missing).
  const byClient = {
    first: scenes.slice(0, 6),
    second: scenes.slice(6, 11),
    cli: scenes.slice(11, python ? 16 : 20),
    addon: python ? scenes.slice(16) : [],
  };
  const jobOf = new Map<number, string>();
  const env = { ...process.env, SKYFARM_HOME: home, SKYFARM_PORT: '0' };
  const addonScript = join(dir, 'addon_client.py');
  writeFileSync(addonScript, ADDON_CLIENT_PY);
  const started = Date.now();
  await Promise.all([
    ...byClient.first.map(async (scene) => {
      jobOf.set(scene.index, (await first.request('render.submit', { blendFile: scene.path })).job.id);
    }),
    ...byClient.second.map(async (scene) => {
      jobOf.set(scene.index, (await second.request('render.submit', { blendFile: scene.path })).job.id);
    }),
    ...byClient.cli.map(async (scene) => {
      const result = await runCli(['render', scene.path, '--json'], { env, timeoutMs: 180_000 });
      if (result.code !== 0) throw new Error(`skyfarm render failed: ${result.stdout}${result.stderr}`);
      jobOf.set(scene.index, (JSON.parse(result.stdout) as { id: string }).id);
    }),
    (async () => {
      if (byClient.addon.length === 0) return;
      const { stdout } = await execFileAsync(
        'python3',
        [
          addonScript,
          join(projectRoot, 'blender-addon', 'skyfarm'),
          home,
          JSON.stringify(byClient.addon.map((s) => s.path)),
        ],
        { timeout: 240_000 },
      );
      const ids = JSON.parse(stdout.trim().split('\n').at(-1)!) as Record<string, string>;
      for (const scene of byClient.addon) jobOf.set(scene.index, ids[scene.path]!);
    })(),
  ]);
  t.comment(`20 submissions accepted in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  t.comment(python ? 'the add-on client submitted 4 jobs' : 'python3 missing: the CLI submitted those 4 too');
  t.equal(new Set(jobOf.values()).size, JOBS, 'twenty distinct job ids');
  t.ok(
    [...jobOf.values()].every((id) => /^j_[0-9a-f]{12}$/.test(id)),
    'each submission got a job',
  );

  let jobs: Job[] = [];
  const deadline = Date.now() + 300_000;
  while (Date.now() < deadline) {
    jobs = (await first.request('jobs.list', {})).jobs;
    if (jobs.length >= JOBS && jobs.every((job) => ['done', 'failed', 'canceled'].includes(job.state))) break;
    await sleep(500);
  }
  t.comment(`all finished ${((Date.now() - started) / 1000).toFixed(1)} s after the first submission`);
  t.equal(jobs.length, JOBS, 'exactly 20 jobs');

  const seen = new Set<string>();
  for (const scene of scenes) {
    const id = jobOf.get(scene.index)!;
    const job = jobs.find((candidate) => candidate.id === id);
    const expected = Array.from({ length: scene.frames }, (_, i) => `c_000${i + 1}.png`);
    t.match(job, { state: 'done', framesDone: scene.frames, framesFailed: 0 }, `scene ${scene.index}: done`);
    const folder = join(dir, `scene${scene.index}`, 'out');
    t.equal(job?.output, folder, `scene ${scene.index}: its own output folder`);
    t.same(
      readdirSync(folder).sort(),
      expected,
      `scene ${scene.index}: exactly its ${scene.frames} frame(s)`,
    );
    for (const name of expected) {
      const png = await readPng(join(folder, name));
      // Row 0, pixel 0 (after the filter byte) is stored unfiltered by every PNG filter type.
      const pixel = [png.pixels[1]!, png.pixels[2]!, png.pixels[3]!];
      const close = pixel.every((value, channel) => Math.abs(value - scene.colour[channel]!) <= 3);
      t.ok(
        close,
        `scene ${scene.index} ${name}: its own colour ${JSON.stringify(scene.colour)} (got ${JSON.stringify(pixel)})`,
      );
      seen.add(pixel.join(','));
    }
    t.equal(seenBySecond.get(id)?.state, 'done', `scene ${scene.index}: the other client saw it finish`);
  }
  t.equal(seen.size, JOBS, 'twenty different colours: no frame came from another scene');
  t.same(readdirSync(join(home, 'work')), [], 'working folders removed');
});
