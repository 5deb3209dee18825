// What one Blender says about itself (version, where it keeps user add-ons and extensions) and which
// skyfarm add-on is installed there, read from the installed files.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { SkyfarmError } from '../errors.js';
import { runBlender, type BlenderVersion } from '../render/blender.js';

const INFO_MARK = 'SKYFARM_ADDON_INFO ';
const INFO_TIMEOUT_MS = 120_000;
/** The first Blender that installs add-ons as extensions. */
export const EXTENSIONS_SINCE: BlenderVersion = [4, 2, 0];

// Runs with --factory-startup: nothing of the user's setup is loaded just to read folders.
const INFO_SCRIPT = `
import bpy, json
version = tuple(bpy.app.version)
extensions = ""
if version >= (4, 2, 0):
    try:
        extensions = bpy.utils.user_resource("EXTENSIONS", path="user_default")
    except Exception:
        extensions = ""
print("${INFO_MARK}" + json.dumps({
    "version": list(version),
    "addons": bpy.utils.user_resource("SCRIPTS", path="addons"),
    "extensions": extensions,
}), flush=True)
`;

export interface BlenderInfo {
  version: BlenderVersion;
  /** The user add-ons folder (legacy add-ons live in `<addons>/skyfarm`). */
  addons: string;
  /** The user_default extension repository's folder (4.2+), else "". */
  extensions: string;
}

export interface InstalledAddon {
  kind: 'extension' | 'legacy';
  folder: string;
  version: string;
  /** The CLI command the add-on starts the daemon with (cli_command.json), when it has one. */
  cliCommand?: string[];
}

export function usesExtensions(version: BlenderVersion): boolean {
  const [major, minor] = version;
  return major > EXTENSIONS_SINCE[0] || (major === EXTENSIONS_SINCE[0] && minor >= EXTENSIONS_SINCE[1]);
}

export async function blenderInfo(blender: string, env: NodeJS.ProcessEnv): Promise<BlenderInfo> {
  let info: BlenderInfo | undefined;
  const run = await runBlender(
    blender,
    ['--background', '--factory-startup', '--python-exit-code', '1', '--python-expr', INFO_SCRIPT],
    {
      env,
      timeoutMs: INFO_TIMEOUT_MS,
      onLine: (line) => {
        if (line.startsWith(INFO_MARK)) info = JSON.parse(line.slice(INFO_MARK.length)) as BlenderInfo;
      },
    },
  ).catch((error: unknown) => {
    throw new SkyfarmError('BLENDER_MISSING', `${blender} could not be started: ${(error as Error).message}`);
  });
  if (!info) {
    const why = run.timedOut ? `did not answer within ${INFO_TIMEOUT_MS / 1000} s` : `exit ${run.exitCode}`;
    throw new SkyfarmError(
      'BLENDER_MISSING',
      `${blender} did not say its version (${why}): is it Blender? ${run.tail.slice(-3).join(' ')}`.trim(),
    );
  }
  return info;
}

function readVersion(file: string, pattern: RegExp): string | undefined {
  try {
    const match = pattern.exec(readFileSync(file, 'utf8'));
    return match ? match[1]!.replace(/[\s,]+/g, '.').replace(/^\.|\.$/g, '') : undefined;
  } catch {
    return undefined;
  }
}

function readCliCommand(folder: string): string[] | undefined {
  try {
    const value = JSON.parse(readFileSync(path.join(folder, 'cli_command.json'), 'utf8')) as {
      argv?: unknown;
    };
    return Array.isArray(value.argv) ? value.argv.map(String) : undefined;
  } catch {
    return undefined;
  }
}

/** The skyfarm add-ons installed in this Blender's user folders (an extension, a legacy add-on, both). */
export function installedAddons(info: BlenderInfo): InstalledAddon[] {
  const found: InstalledAddon[] = [];
  const add = (kind: InstalledAddon['kind'], folder: string, version: string | undefined) => {
    if (!version) return;
    const cliCommand = readCliCommand(folder);
    found.push({ kind, folder, version, ...(cliCommand ? { cliCommand } : {}) });
  };
  if (info.extensions) {
    const folder = path.join(info.extensions, 'skyfarm');
    add(
      'extension',
      folder,
      readVersion(path.join(folder, 'blender_manifest.toml'), /^version\s*=\s*"([^"]+)"/m),
    );
  }
  const legacy = path.join(info.addons, 'skyfarm');
  if (existsSync(path.join(legacy, '__init__.py')))
    add('legacy', legacy, readVersion(path.join(legacy, '__init__.py'), /"version":\s*\(([\d,\s]+)\)/));
  return found;
}
