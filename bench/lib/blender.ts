// Blender for the render and add-on metrics: SKYFARM_BLENDER, else `blender` on PATH.
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { onPath } from './proc.js';
import type { BenchContext } from './types.js';

export function findBlenderBinary(): string | undefined {
  const chosen = process.env['SKYFARM_BLENDER']?.trim();
  if (chosen) return existsSync(chosen) ? chosen : undefined;
  return onPath('blender');
}

export const NO_BLENDER =
  'Blender is not installed: apt-get install -y --no-install-recommends blender (or set SKYFARM_BLENDER)';

/** Private config/scripts/temp folders, so nothing reads or touches the user's Blender setup. */
export function blenderEnv(
  ctx: BenchContext,
  label: string,
  extra: NodeJS.ProcessEnv = {},
): NodeJS.ProcessEnv {
  const dir = path.join(ctx.tmp, `blender-${label}`);
  for (const sub of ['config', 'scripts', 'tmp']) mkdirSync(path.join(dir, sub), { recursive: true });
  return {
    ...process.env,
    BLENDER_USER_CONFIG: path.join(dir, 'config'),
    BLENDER_USER_SCRIPTS: path.join(dir, 'scripts'),
    TMPDIR: path.join(dir, 'tmp'),
    PYTHONDONTWRITEBYTECODE: '1',
    ...extra,
  };
}
