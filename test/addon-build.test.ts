// `npm run build:addon` (blender-addon/build.py): an installable, reproducible zip with the package
// and its 4.2+ extension manifest, without tests or caches, that real Blender installs and enables:
// with Install… (a legacy add-on, every Blender) and, on 4.2+, as an extension from the command line.
import t from 'tap';
import { existsSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { inflateRawSync } from 'node:zlib';
import {
  addonRoot,
  addonTests,
  blender,
  blenderEnv,
  blenderRelease,
  blenderVersion,
  buildAddonZip,
  installExtension,
  run,
  tail,
} from '../blender-addon/tests/harness.js';

t.comment(`using ${blenderVersion()}`);
const [major, minor] = blenderRelease();

/** Lists a zip's entries (central directory) and reads one file's bytes. */
function readZip(file: string): { names: string[]; read(name: string): string } {
  const data = readFileSync(file);
  const end = data.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
  const count = data.readUInt16LE(end + 10);
  let offset = data.readUInt32LE(end + 16);
  const entries = new Map<string, { method: number; size: number; local: number }>();
  for (let i = 0; i < count; i++) {
    const nameLength = data.readUInt16LE(offset + 28);
    const extra = data.readUInt16LE(offset + 30);
    const comment = data.readUInt16LE(offset + 32);
    const name = data.toString('utf8', offset + 46, offset + 46 + nameLength);
    entries.set(name, {
      method: data.readUInt16LE(offset + 10),
      size: data.readUInt32LE(offset + 20),
      local: data.readUInt32LE(offset + 42),
    });
    offset += 46 + nameLength + extra + comment;
  }
  return {
    names: [...entries.keys()],
    read(name) {
      const entry = entries.get(name);
      if (!entry) throw new Error(`${name} is not in ${file}`);
      const start =
        entry.local + 30 + data.readUInt16LE(entry.local + 26) + data.readUInt16LE(entry.local + 28);
      const raw = data.subarray(start, start + entry.size);
      return (entry.method === 8 ? inflateRawSync(raw) : raw).toString('utf8');
    },
  };
}

t.test('the zip holds the package and manifest, nothing else, and rebuilds byte for byte', async (t) => {
  const dir = t.testdir({});
  const first = path.join(dir, 'a', 'skyfarm-addon.zip');
  const second = path.join(dir, 'b', 'skyfarm-addon.zip');
  const built = await buildAddonZip(first);
  t.equal(built.code, 0, 'build.py exits 0', { output: tail(built) });
  t.match(built.stdout, /skyfarm add-on 0\.\d+\.\d+/, 'it says what it built');
  t.equal((await buildAddonZip(second)).code, 0);
  t.ok(readFileSync(first).equals(readFileSync(second)), 'two builds give identical bytes');

  const zip = readZip(first);
  for (const name of [
    '__init__.py',
    'blender_manifest.toml',
    'protocol.py',
    'wsclient.py',
    'codec.py',
    'panels.py',
  ]) {
    t.ok(zip.names.includes(`skyfarm/${name}`), `contains skyfarm/${name}`);
  }
  t.same(
    zip.names.filter((name) => !/^skyfarm\/[a-z_]+\.(py|toml)$/.test(name)),
    [],
    'only package files, no tests or caches',
  );
  const manifest = zip.read('skyfarm/blender_manifest.toml');
  t.match(
    manifest,
    /^permissions = \{ network = "localhost only: talks to the skyfarm daemon on 127\.0\.0\.1" \}$/m,
  );
  t.match(manifest, /^id = "skyfarm"$/m);
  t.match(manifest, /^blender_version_min = "4\.2\.0"$/m);
  const version = /^version = "([^"]+)"$/m.exec(manifest)?.[1];
  const blInfo = /"version": \((\d+), (\d+), (\d+)\)/.exec(zip.read('skyfarm/__init__.py'));
  t.equal(blInfo?.slice(1).join('.'), version, 'bl_info and the manifest agree on the version');
});

t.test('a version mismatch between bl_info and the manifest fails the build', async (t) => {
  // Build from a copy of the package with a bumped manifest, so the real sources stay untouched.
  const dir = t.testdir({});
  const copy = path.join(dir, 'blender-addon');
  mkdirSync(path.join(copy, 'skyfarm'), { recursive: true });
  writeFileSync(path.join(copy, 'build.py'), readFileSync(path.join(addonRoot, 'build.py')));
  for (const name of ['__init__.py', 'protocol.py']) {
    writeFileSync(path.join(copy, 'skyfarm', name), readFileSync(path.join(addonRoot, 'skyfarm', name)));
  }
  const manifest = readFileSync(path.join(addonRoot, 'skyfarm', 'blender_manifest.toml'), 'utf8');
  writeFileSync(
    path.join(copy, 'skyfarm', 'blender_manifest.toml'),
    manifest.replace(/^version = ".*"$/m, 'version = "9.9.9"'),
  );
  const result = await run('python3', [path.join(copy, 'build.py'), '--output', path.join(dir, 'out.zip')], {
    timeoutMs: 60_000,
  });
  t.equal(result.code, 1, 'build.py exits 1');
  t.match(result.stderr, /bl_info says .* but blender_manifest\.toml says 9\.9\.9/);
});

t.test('Blender installs the built zip as a legacy add-on and enables it', async (t) => {
  const dir = t.testdir({});
  const zipPath = path.join(dir, 'skyfarm-addon.zip');
  t.equal((await buildAddonZip(zipPath)).code, 0);
  const env = blenderEnv(t, { SKYFARM_HOME: path.join(dir, 'no-daemon') });
  const script = [
    'import bpy, addon_utils, sys',
    `bpy.ops.preferences.addon_install(filepath=${JSON.stringify(zipPath)})`,
    'module = addon_utils.enable("skyfarm", default_set=True)',
    'assert module is not None and module.__file__.startswith(bpy.utils.user_resource("SCRIPTS")), module',
    'assert bpy.context.scene.skyfarm.backend == "LOCAL"',
    'print("SKYFARM_ZIP_INSTALLED", module.__file__, module.bl_info["version"])',
    'addon_utils.disable("skyfarm", default_set=True)',
  ].join('\n');
  const result = await run(
    blender,
    ['-b', '--factory-startup', '--python-exit-code', '1', '--python-expr', script],
    {
      env,
      timeoutMs: 120_000,
    },
  );
  t.equal(result.code, 0, 'blender exits 0', { output: tail(result) });
  t.match(
    result.stdout,
    new RegExp(`SKYFARM_ZIP_INSTALLED ${env.BLENDER_USER_SCRIPTS}/addons/skyfarm/__init__.py`),
  );
});

// Blender 4.2 introduced extensions; 3.x-4.1 have no `--command extension` (the zip's manifest is
// ignored there and the legacy install above is the way).
if (major > 4 || (major === 4 && minor >= 2)) {
  t.test('Blender 4.2+ installs the built zip as an extension from the command line', async (t) => {
    const dir = t.testdir({});
    const zipPath = path.join(dir, 'skyfarm-addon.zip');
    t.equal((await buildAddonZip(zipPath)).code, 0);
    const env = blenderEnv(t, { SKYFARM_HOME: path.join(dir, 'no-daemon') });
    const validated = await run(blender, ['--command', 'extension', 'validate', zipPath], {
      env,
      timeoutMs: 120_000,
    });
    t.equal(validated.code, 0, 'blender --command extension validate accepts the zip', {
      output: tail(validated),
    });
    const installed = await installExtension(zipPath, env);
    t.equal(installed.code, 0, 'blender --command extension install-file -r user_default -e exits 0', {
      output: tail(installed),
    });
    const folder = path.join(env.BLENDER_USER_EXTENSIONS!, 'user_default', 'skyfarm');
    t.ok(existsSync(path.join(folder, 'blender_manifest.toml')), `the extension is unpacked in ${folder}`);

    // A new Blender with the preferences the install saved: the extension is enabled and registered,
    // and its panels draw (read through the layout recorder: background Blender draws no pixels).
    const result = await run(
      blender,
      ['-b', '--python-exit-code', '1', '--python', path.join(addonTests, 'blender', 'extension_check.py')],
      { env, timeoutMs: 120_000 },
    );
    t.equal(result.code, 0, 'extension_check.py exits 0', { output: tail(result) });
    t.match(
      result.stdout,
      new RegExp(`SKYFARM_EXTENSION_ENABLED bl_ext\\.user_default\\.skyfarm ${folder}/__init__\\.py`),
    );
    t.match(
      result.stdout,
      /SKYFARM_EXTENSION_PANEL .*Render on skyfarm/,
      'the submit panel draws its Render button',
    );
    t.match(result.stdout, /SKYFARM_EXTENSION_JOBS .*press Render on skyfarm above/, 'the jobs panel draws');
  });
}
