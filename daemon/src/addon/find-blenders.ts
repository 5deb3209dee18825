// The Blenders `skyfarm addon install|status|uninstall` work on: the ones named with --blender, or
// else every Blender found in the usual places — SKYFARM_BLENDER, `blender` on PATH, and where the
// official builds, distributions, Snap and Flatpak put it on Linux, macOS and Windows. One entry
// per program (symlinks to the same file count once).
import { readdir, realpath } from 'node:fs/promises';
import { homedir } from 'node:os';
import path from 'node:path';
import { SkyfarmError } from '../errors.js';
import { resolveExecutable } from '../render/blender.js';

export interface BlenderCandidate {
  /** The command as found or given (what the user recognises). */
  command: string;
  /** Where it came from: "--blender", "SKYFARM_BLENDER", "PATH" or "installed". */
  source: string;
}

async function children(dir: string, pattern: RegExp): Promise<string[]> {
  try {
    return (await readdir(dir)).filter((name) => pattern.test(name)).map((name) => path.join(dir, name));
  } catch {
    return [];
  }
}

/** Executables where Blender is usually installed on this platform. */
async function usualPlaces(env: NodeJS.ProcessEnv, platform: NodeJS.Platform): Promise<string[]> {
  const home = env.HOME || env.USERPROFILE || homedir();
  if (platform === 'darwin') {
    const apps = [
      ...(await children('/Applications', /^Blender.*\.app$/i)),
      ...(await children(path.join(home, 'Applications'), /^Blender.*\.app$/i)),
    ];
    return apps.map((app) => path.join(app, 'Contents', 'MacOS', 'Blender'));
  }
  if (platform === 'win32') {
    const roots = [
      env.ProgramFiles,
      env['ProgramFiles(x86)'],
      env.LOCALAPPDATA && path.join(env.LOCALAPPDATA, 'Programs'),
    ];
    const found: string[] = [];
    for (const root of roots) {
      if (!root) continue;
      for (const version of await children(path.join(root, 'Blender Foundation'), /^Blender/i))
        found.push(path.join(version, 'blender.exe'));
    }
    const steam =
      env['ProgramFiles(x86)'] && path.join(env['ProgramFiles(x86)'], 'Steam', 'steamapps', 'common');
    if (steam) found.push(path.join(steam, 'Blender', 'blender.exe'));
    return found;
  }
  const unpacked = [
    ...(await children('/opt', /^blender/i)),
    ...(await children(home, /^blender-\d/i)),
    ...(await children(path.join(home, 'Applications'), /^blender/i)),
  ].map((dir) => path.join(dir, 'blender'));
  return [
    '/usr/bin/blender',
    '/usr/local/bin/blender',
    '/snap/bin/blender',
    '/var/lib/flatpak/exports/bin/org.blender.Blender',
    path.join(home, '.local', 'share', 'flatpak', 'exports', 'bin', 'org.blender.Blender'),
    ...unpacked,
  ];
}

/**
 * The Blenders to work on. Named ones (`--blender`) must exist; found ones are those that do.
 * Throws BLENDER_MISSING when there is none.
 */
export async function findBlenders(
  named: string[],
  env: NodeJS.ProcessEnv,
  platform: NodeJS.Platform = process.platform,
): Promise<BlenderCandidate[]> {
  const found: BlenderCandidate[] = [];
  const seen = new Set<string>();
  const add = async (command: string, source: string): Promise<boolean> => {
    const executable = await resolveExecutable(command, env);
    if (!executable) return false;
    const real = await realpath(executable).catch(() => executable);
    if (!seen.has(real)) {
      seen.add(real);
      found.push({ command: executable, source });
    }
    return true;
  };
  if (named.length) {
    for (const command of named) {
      if (!(await add(command, '--blender')))
        throw new SkyfarmError('BLENDER_MISSING', `--blender ${command}: no such program`);
    }
    return found;
  }
  const configured = env.SKYFARM_BLENDER?.trim();
  if (configured) await add(configured, 'SKYFARM_BLENDER');
  await add(platform === 'win32' ? 'blender.exe' : 'blender', 'PATH');
  for (const place of await usualPlaces(env, platform)) await add(place, 'installed');
  if (!found.length) {
    throw new SkyfarmError(
      'BLENDER_MISSING',
      'no Blender found (SKYFARM_BLENDER, "blender" on PATH, the usual install folders); name one with ' +
        '`skyfarm addon install --blender /path/to/blender`, or install Blender from https://www.blender.org/download/',
    );
  }
  return found;
}
