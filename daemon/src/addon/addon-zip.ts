// The add-on zip `skyfarm addon install` hands to Blender: blender-addon/skyfarm/ of this skyfarm
// installation (as blender-addon/build.py packs it), plus cli_command.json, the absolute command of
// the CLI that installed it. Start Daemon runs that command when the add-on's preferences name none,
// so a Blender started from a desktop icon (no skyfarm on its PATH) starts the right daemon.
import { realpathSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { findProjectRoot } from '../config/project-root.js';
import { DAEMON_VERSION } from '../version.js';
import { zipEntries, type ZipEntry } from '../util/zip.js';

const INCLUDED = /\.(py|toml)$/;
const EXCLUDED_DIRS = new Set(['__pycache__', 'tests', '.pytest_cache']);

/** The command that runs this CLI: this Node.js and this installation's entry script, both absolute. */
export function cliCommand(): string[] {
  const entry = fileURLToPath(new URL('../cli/main.js', import.meta.url));
  let script = entry;
  try {
    script = realpathSync(entry);
  } catch {
    // Running from sources (tsx): the .js does not exist; the path still says which checkout.
  }
  return [process.execPath, script];
}

async function addonFiles(dir: string, prefix: string, out: ZipEntry[]): Promise<void> {
  const entries = (await readdir(dir, { withFileTypes: true })).sort((a, b) => a.name.localeCompare(b.name));
  for (const entry of entries) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) {
      if (!EXCLUDED_DIRS.has(entry.name)) await addonFiles(full, `${prefix}${entry.name}/`, out);
    } else if (entry.isFile() && INCLUDED.test(entry.name)) {
      out.push({ name: `${prefix}${entry.name}`, data: await readFile(full) });
    }
  }
}

/** The add-on's version as its blender_manifest.toml says. */
export async function packagedAddonVersion(root = findProjectRoot()): Promise<string> {
  const manifest = await readFile(
    path.join(root, 'blender-addon', 'skyfarm', 'blender_manifest.toml'),
    'utf8',
  );
  return /^version\s*=\s*"([^"]+)"/m.exec(manifest)?.[1] ?? 'unknown';
}

/** Writes the zip into a new temp folder; `remove()` deletes it again. */
export async function writeAddonZip(
  command: string[] = cliCommand(),
): Promise<{ zip: string; version: string; remove(): Promise<void> }> {
  const root = findProjectRoot();
  const entries: ZipEntry[] = [];
  await addonFiles(path.join(root, 'blender-addon', 'skyfarm'), 'skyfarm/', entries);
  const stamp = { argv: command, version: DAEMON_VERSION };
  entries.push({
    name: 'skyfarm/cli_command.json',
    data: Buffer.from(`${JSON.stringify(stamp, null, 2)}\n`),
  });
  const dir = await mkdtemp(path.join(tmpdir(), 'skyfarm-addon-'));
  const zip = path.join(dir, 'skyfarm-addon.zip');
  await writeFile(zip, zipEntries(entries));
  return {
    zip,
    version: await packagedAddonVersion(root),
    remove: () => rm(dir, { recursive: true, force: true }),
  };
}
