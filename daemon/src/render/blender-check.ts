// `blender --version` (findBlender) is a Blender start. Its answer depends only on the binary, so it
// is remembered in SQLite with the binary's identity (size, mtime, inode): while the file found is
// the same one, no Blender is started to check it again (a re-submit whose probe is remembered too
// then starts no Blender before rendering). An upgraded or replaced Blender is a new file: checked.
import { stat } from 'node:fs/promises';
import type { Db } from '../db/database.js';
import {
  findBlender,
  rememberBlenderVersion,
  resolveExecutable,
  type BlenderInstall,
  type BlenderVersion,
} from './blender.js';

async function binaryIdentity(file: string): Promise<string | null> {
  try {
    const s = await stat(file, { bigint: true });
    return `${s.size}:${s.mtimeNs}:${s.dev}:${s.ino}`;
  } catch {
    return null;
  }
}

/** The command findBlender looks for: `SKYFARM_BLENDER`, else `blender` on PATH. */
export function blenderCommand(env: NodeJS.ProcessEnv): string {
  return env['SKYFARM_BLENDER']?.trim() || 'blender';
}

export function rememberedFindBlender(
  db: Db,
  env: NodeJS.ProcessEnv,
  find: (env: NodeJS.ProcessEnv) => Promise<BlenderInstall> = findBlender,
): () => Promise<BlenderInstall> {
  return async () => {
    const executable = await resolveExecutable(blenderCommand(env), env);
    const before = executable ? await binaryIdentity(executable) : null;
    if (executable && before) {
      const row = db.prepare('SELECT value FROM kv WHERE key = ?').get(`blender:${executable}`) as
        { value: string } | undefined;
      const known = row
        ? (JSON.parse(row.value) as { identity: string; version: BlenderVersion })
        : undefined;
      if (known?.identity === before) {
        rememberBlenderVersion(executable, known.version); // renders pick their flags by it
        return { path: executable, version: known.version };
      }
    }
    const found = await find(env);
    if (found.path === executable && before && (await binaryIdentity(found.path)) === before) {
      db.prepare(
        'INSERT INTO kv (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value',
      ).run(`blender:${found.path}`, JSON.stringify({ identity: before, version: found.version }));
    }
    return found;
  };
}
