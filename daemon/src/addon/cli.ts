// `skyfarm addon install|status|uninstall [--blender PATH]… [--json]`: puts the add-on into the
// user's Blenders (each the way it expects), says what is installed where (stale ones flagged), and
// removes it. Each Blender is handled on its own: one that fails is reported, the others proceed.
import type { CliContext } from '../cli/commands.js';
import { EXIT } from '../cli/exit-codes.js';
import { SkyfarmError, toErrorInfo } from '../errors.js';
import { compareVersions, MIN_BLENDER_VERSION } from '../render/blender.js';
import { writeAddonZip, packagedAddonVersion, cliCommand } from './addon-zip.js';
import { blenderInfo, installedAddons, usesExtensions, type InstalledAddon } from './blender-info.js';
import { findBlenders } from './find-blenders.js';
import { installAddon, uninstallAddon } from './install.js';

export type AddonAction = 'install' | 'status' | 'uninstall';

interface BlenderReport {
  blender: string;
  source: string;
  version?: string;
  /** How this Blender takes add-ons: "extension" (4.2+) or "legacy". */
  kind?: 'extension' | 'legacy';
  installed: (InstalledAddon & { stale: boolean })[];
  /** install: what was installed; uninstall: what was removed. */
  changed?: InstalledAddon[];
  error?: { code: string; message: string };
}

function describeAddon(addon: InstalledAddon & { stale: boolean }, current: string): string {
  const kind = addon.kind === 'extension' ? 'extension' : 'legacy add-on';
  const stale = addon.stale ? ` — stale: this skyfarm is ${current}; run \`skyfarm addon install\`` : '';
  return `skyfarm ${addon.version} (${kind}, ${addon.folder})${stale}`;
}

function printText(ctx: CliContext, action: AddonAction, reports: BlenderReport[], current: string): void {
  for (const report of reports) {
    const head = `${report.blender}${report.version ? `  Blender ${report.version}` : ''}`;
    if (report.error) {
      ctx.stdout.write(`${head}: ${report.error.message}\n`);
      continue;
    }
    if (action === 'uninstall') {
      ctx.stdout.write(
        `${head}: ${report.changed?.length ? `removed ${report.changed.map((a) => `skyfarm ${a.version} (${a.folder})`).join(', ')}` : 'not installed'}\n`,
      );
      continue;
    }
    if (action === 'install') {
      const done = report.changed?.[0];
      ctx.stdout.write(
        `${head}: installed and enabled skyfarm ${done?.version ?? current} (${report.kind}, ${done?.folder ?? '?'})\n`,
      );
      continue;
    }
    const what = report.installed.length
      ? report.installed.map((addon) => describeAddon(addon, current)).join('; ')
      : 'skyfarm not installed';
    ctx.stdout.write(`${head}: ${what}\n`);
  }
  if (action === 'install' && reports.some((r) => !r.error)) {
    ctx.stdout.write(
      `Start Daemon in Blender runs: ${cliCommand().join(' ')} daemon start (Properties > Output > skyfarm)\n`,
    );
  }
}

export async function addonCommand(
  ctx: CliContext,
  action: AddonAction,
  options: { blenders: string[]; json: boolean },
): Promise<number> {
  const candidates = await findBlenders(options.blenders, ctx.env);
  const current = await packagedAddonVersion();
  const zip = action === 'install' ? await writeAddonZip() : undefined;
  const reports: BlenderReport[] = [];
  try {
    for (const candidate of candidates) {
      const report: BlenderReport = { blender: candidate.command, source: candidate.source, installed: [] };
      reports.push(report);
      try {
        const info = await blenderInfo(candidate.command, ctx.env);
        report.version = info.version.join('.');
        report.kind = usesExtensions(info.version) ? 'extension' : 'legacy';
        if (action === 'install') {
          if (compareVersions(info.version, MIN_BLENDER_VERSION) < 0) {
            throw new SkyfarmError(
              'BLENDER_TOO_OLD',
              `Blender ${report.version} is too old for skyfarm (${MIN_BLENDER_VERSION.slice(0, 2).join('.')} or newer)`,
            );
          }
          if (!options.json) ctx.stderr.write(`installing the skyfarm add-on into ${candidate.command} …\n`);
          report.changed = [await installAddon(candidate.command, info, zip!.zip, ctx.env)];
        } else if (action === 'uninstall') {
          report.changed = await uninstallAddon(candidate.command, info, ctx.env);
        }
        report.installed = installedAddons(info).map((addon) => ({
          ...addon,
          stale: addon.version !== current,
        }));
      } catch (error) {
        report.error = toErrorInfo(error);
      }
    }
  } finally {
    await zip?.remove();
  }
  if (options.json) {
    ctx.stdout.write(
      `${JSON.stringify({ version: current, cliCommand: cliCommand(), blenders: reports })}\n`,
    );
  } else {
    printText(ctx, action, reports, current);
  }
  return reports.some((report) => report.error) ? EXIT.input : EXIT.ok;
}
