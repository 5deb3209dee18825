// A library that links another library, in folders below the shot: the add-on (live session, right
// after linking) and the daemon's probe (the saved file) must both list each library once, at its
// real path. The add-on used to resolve the inner library's `//` path against the outer library and
// named a file that does not exist (proj/libs/libs/deeper/deep.blend), which Strict then refused.
import t from 'tap';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { blender, blenderEnv, repoRoot, run, tail } from '../blender-addon/tests/harness.js';

const dependenciesModule = path.join(repoRoot, 'blender-addon', 'skyfarm', 'dependencies.py');
const probeScript = path.join(repoRoot, 'daemon', 'blender', 'probe.py');

// Writes deep.blend, lib.blend (links deep's object) and shot.blend (links lib's scene objects),
// then lists the live session's dependencies with the add-on's module and saves shot.blend.
const buildChain = `
import bpy, importlib.util, json, os, sys
args = json.loads(sys.argv[sys.argv.index("--") + 1])
root = args["root"]
for folder in ("libs/deeper",):
    os.makedirs(os.path.join(root, folder), exist_ok=True)

def empty():
    bpy.ops.wm.read_factory_settings(use_empty=True)

def link_objects(library, names, collection):
    with bpy.data.libraries.load(library, link=True, relative=True) as (source, target):
        target.objects = names
    for ob in target.objects:
        collection.objects.link(ob)

empty()
bpy.context.scene.collection.objects.link(bpy.data.objects.new("Deep", bpy.data.meshes.new("Deep")))
bpy.ops.wm.save_as_mainfile(filepath=os.path.join(root, "libs", "deeper", "deep.blend"))
empty()
bpy.ops.wm.save_as_mainfile(filepath=os.path.join(root, "libs", "lib.blend"))
props = bpy.data.collections.new("Props")
bpy.context.scene.collection.children.link(props)
link_objects("//deeper/deep.blend", ["Deep"], props)
props.objects.link(bpy.data.objects.new("Prop", bpy.data.meshes.new("Prop")))
bpy.ops.wm.save_as_mainfile(filepath=os.path.join(root, "libs", "lib.blend"))
empty()
bpy.ops.wm.save_as_mainfile(filepath=os.path.join(root, "shot.blend"))
with bpy.data.libraries.load("//libs/lib.blend", link=True, relative=True) as (source, target):
    target.collections = ["Props"]
bpy.context.scene.collection.children.link(target.collections[0])

spec = importlib.util.spec_from_file_location("skyfarm_dependencies", args["module"])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
live = [dependency.to_message() for dependency in module.collect()]
with open(args["out"], "w", encoding="utf-8") as handle:
    json.dump({"live": live, "parents": {lib.name: lib.parent.name if lib.parent else None for lib in bpy.data.libraries}}, handle)
bpy.ops.wm.save_as_mainfile(filepath=os.path.join(root, "shot.blend"))
`;

t.test('a library chain is listed at its real paths, live and saved', async (t) => {
  const root = t.testdir({});
  const out = path.join(root, 'live.json');
  const built = await run(
    blender,
    [
      '-b',
      '--factory-startup',
      '--python-exit-code',
      '3',
      '--python-expr',
      buildChain,
      '--',
      JSON.stringify({ root, module: dependenciesModule, out }),
    ],
    { env: blenderEnv(t), timeoutMs: 120_000 },
  );
  t.equal(built.code, 0, 'Blender built the chain', { output: tail(built) });
  const { live, parents } = JSON.parse(readFileSync(out, 'utf8')) as {
    live: { path: string; kind: string; missing: boolean }[];
    parents: Record<string, string | null>;
  };
  t.equal(parents['deep.blend'], 'lib.blend', 'deep.blend is linked through lib.blend in the live session');
  const libraries = [path.join(root, 'libs', 'deeper', 'deep.blend'), path.join(root, 'libs', 'lib.blend')];
  for (const file of libraries) t.ok(existsSync(file), `${path.relative(root, file)} exists`);
  const liveLibraries = live.filter((entry) => entry.kind === 'library');
  t.same(
    liveLibraries.map((entry) => [entry.path, entry.missing]).sort(),
    libraries.map((file) => [file, false]),
    'the add-on lists both libraries once, at their real paths, none missing',
  );

  const probe = await run(
    blender,
    [
      '-b',
      '--factory-startup',
      path.join(root, 'shot.blend'),
      '--python-exit-code',
      '3',
      '--python',
      probeScript,
      '--',
      '{}',
    ],
    { env: blenderEnv(t), timeoutMs: 120_000 },
  );
  const line = probe.stdout.split('\n').find((text) => text.startsWith('SKYFARM_PROBE '));
  t.ok(line, 'the daemon probe ran', { output: tail(probe) });
  const probed = (
    JSON.parse(line!.slice('SKYFARM_PROBE '.length)) as {
      dependencies: { path: string; kind: string; missing: boolean }[];
    }
  ).dependencies.filter((entry) => entry.kind === 'library');
  t.same(
    probed.map((entry) => [entry.path, entry.missing]).sort(),
    libraries.map((file) => [file, false]),
    'the probe of the saved file lists the same two',
  );
});
