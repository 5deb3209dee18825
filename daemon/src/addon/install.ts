// Installs, enables and removes the skyfarm add-on in one Blender, the way that Blender expects it:
// 4.2+ as an extension in the user_default repository (`blender --command extension …`), older ones
// as a legacy add-on (Preferences' own operators, run in the background, then the preferences saved).
import { SkyfarmError } from '../errors.js';
import { runBlender, type BlenderRun } from '../render/blender.js';
import { installedAddons, usesExtensions, type BlenderInfo, type InstalledAddon } from './blender-info.js';

const RUN_TIMEOUT_MS = 180_000;
const DONE_MARK = 'SKYFARM_ADDON_DONE';

// Legacy add-ons: loads the user's preferences (no --factory-startup), so saving them keeps everything
// else the user set. The zip path comes as the argument after `--`.
const LEGACY_INSTALL = `
import sys, bpy
zip_path = sys.argv[sys.argv.index("--") + 1]
if bpy.ops.preferences.addon_install(overwrite=True, filepath=zip_path) != {"FINISHED"}:
    raise SystemExit("addon_install failed")
if bpy.ops.preferences.addon_enable(module="skyfarm") != {"FINISHED"}:
    raise SystemExit("addon_enable failed")
bpy.ops.wm.save_userpref()
print("${DONE_MARK}", flush=True)
`;

// Preferences' addon_remove needs a window to redraw; in the background the folder goes by hand.
const LEGACY_REMOVE = `
import os, shutil, bpy, addon_utils
addon_utils.disable("skyfarm", default_set=True)
folder = os.path.join(bpy.utils.user_resource("SCRIPTS", path="addons"), "skyfarm")
if os.path.isdir(folder):
    shutil.rmtree(folder)
bpy.ops.wm.save_userpref()
print("${DONE_MARK}", flush=True)
`;

function failure(blender: string, what: string, run: BlenderRun): SkyfarmError {
  const why = run.timedOut
    ? `did not finish within ${RUN_TIMEOUT_MS / 1000} s`
    : `exit ${run.exitCode ?? run.signal}`;
  const lines = (run.errors.length ? run.errors : run.tail).slice(-4).join(' | ');
  return new SkyfarmError(
    'ADDON_INSTALL_FAILED',
    `${blender}: ${what} failed (${why})${lines ? `: ${lines}` : ''}`,
  );
}

/**
 * Runs Blender and fails unless it exits 0, printed `mark` (when given) and, for `--command`, printed
 * no "Error: " line (Blender's extension commands exit 0 after some of their errors).
 */
async function runChecked(
  blender: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  what: string,
  mark?: string,
): Promise<void> {
  let marked = false;
  const errorLines: string[] = [];
  const command = args[0] === '--command';
  const run = await runBlender(blender, args, {
    env,
    timeoutMs: RUN_TIMEOUT_MS,
    onLine: (line) => {
      if (mark && line.startsWith(mark)) marked = true;
      if (command && /^Error: /.test(line)) errorLines.push(line);
    },
  }).catch((error: unknown) => {
    throw new SkyfarmError(
      'ADDON_INSTALL_FAILED',
      `${blender}: ${what}: cannot start it: ${(error as Error).message}`,
    );
  });
  if (run.exitCode !== 0 || run.timedOut || (mark && !marked) || errorLines.length)
    throw failure(blender, what, { ...run, errors: [...run.errors, ...errorLines] });
}

/** Installs (or upgrades in place) and enables the add-on; returns what is installed afterwards. */
export async function installAddon(
  blender: string,
  info: BlenderInfo,
  zip: string,
  env: NodeJS.ProcessEnv,
): Promise<InstalledAddon> {
  const kind = usesExtensions(info.version) ? 'extension' : 'legacy';
  if (kind === 'extension') {
    await runChecked(
      blender,
      ['--command', 'extension', 'install-file', '-r', 'user_default', '-e', zip],
      env,
      'installing the extension',
    );
  } else {
    await runChecked(
      blender,
      ['--background', '--python-exit-code', '1', '--python-expr', LEGACY_INSTALL, '--', zip],
      env,
      'installing the add-on',
      DONE_MARK,
    );
  }
  const now = installedAddons(info).find((addon) => addon.kind === kind);
  if (!now) {
    throw new SkyfarmError(
      'ADDON_INSTALL_FAILED',
      `${blender}: Blender reported success, but no skyfarm add-on is in ${kind === 'extension' ? info.extensions : info.addons}`,
    );
  }
  return now;
}

/** Disables and removes every skyfarm add-on installed in this Blender; returns what was removed. */
export async function uninstallAddon(
  blender: string,
  info: BlenderInfo,
  env: NodeJS.ProcessEnv,
): Promise<InstalledAddon[]> {
  const installed = installedAddons(info);
  for (const addon of installed) {
    if (addon.kind === 'extension') {
      await runChecked(
        blender,
        ['--command', 'extension', 'remove', 'user_default.skyfarm'],
        env,
        'removing the extension',
      );
    } else {
      await runChecked(
        blender,
        ['--background', '--python-exit-code', '1', '--python-expr', LEGACY_REMOVE],
        env,
        'removing the add-on',
        DONE_MARK,
      );
    }
  }
  const left = installedAddons(info);
  if (left.length) {
    throw new SkyfarmError(
      'ADDON_INSTALL_FAILED',
      `${blender}: the skyfarm add-on is still in ${left.map((addon) => addon.folder).join(', ')} after removing it`,
    );
  }
  return installed;
}
