// Probing a scene starts a headless Blender (1–3 s). Its result depends only on the files it read, so
// it is remembered in SQLite and a re-submit of an unchanged scene starts no Blender. The key is the
// .blend's path, the scene asked for and the Blender binary (path and identity: an upgrade replaces
// the file). A remembered result is used only while every file it depends on is unchanged, checked
// with stat: the .blend (size, mtime, inode), every dependency (same identity; a missing one still
// missing, so it appearing re-probes) and every folder the probe listed (mtime: a new frame of a
// sequence, UDIM tile or cache file changes it). Linked libraries are
// dependencies, and so are the files they use: changing one re-probes. A file modified within
// RACY_WINDOW of the probe is not remembered (its next write could keep the same coarse mtime).
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import type { Db } from '../db/database.js';
import { blenderScript, type ProbeResult, type probeBlend } from './blender.js';

type Probe = typeof probeBlend;

const RACY_WINDOW_NS = 100_000_000n; // 100 ms
/** Remembered probes; beyond this the least recently used are forgotten. */
export const PROBE_CACHE_MAX_ENTRIES = 500;

/** `<size>:<mtimeNs>:<dev>:<ino>` for a file, `dir:<mtimeNs>:<dev>:<ino>` for a folder, `missing` when absent. */
type Identity = string;

async function identity(path: string): Promise<{ id: Identity; mtimeNs: bigint | null }> {
  try {
    const s = await stat(path, { bigint: true });
    if (s.isDirectory()) return { id: `dir:${s.mtimeNs}:${s.dev}:${s.ino}`, mtimeNs: s.mtimeNs };
    return { id: `${s.size}:${s.mtimeNs}:${s.dev}:${s.ino}`, mtimeNs: s.mtimeNs };
  } catch {
    return { id: 'missing', mtimeNs: null };
  }
}

let scriptsId: string | undefined;

/** probe.py and the dependencies.py it loads, hashed: what a new version of them reads is probed anew. */
function probeScriptsId(): string {
  if (scriptsId) return scriptsId;
  const probe = blenderScript('probe.py');
  const hash = createHash('sha256').update(readFileSync(probe));
  const shared = path.join(path.dirname(probe), '..', '..', 'blender-addon', 'skyfarm', 'dependencies.py');
  if (existsSync(shared)) hash.update(readFileSync(shared));
  return (scriptsId = hash.digest('hex').slice(0, 16));
}

interface Row {
  result: string;
  checks: string;
}

export interface ProbeCacheStats {
  hits: number;
  misses: number;
}

export class ProbeCache {
  readonly stats: ProbeCacheStats = { hits: 0, misses: 0 };

  constructor(private readonly db: Db) {}

  private static key(blender: Identity, blenderPath: string, file: string, scene: string | undefined) {
    return JSON.stringify([file, scene ?? null, blenderPath, blender, probeScriptsId()]);
  }

  /** The remembered result while every file it was read from is unchanged, else undefined. */
  async get(blenderPath: string, file: string, scene?: string): Promise<ProbeResult | undefined> {
    const blender = (await identity(blenderPath)).id;
    const key = ProbeCache.key(blender, blenderPath, file, scene);
    const row = this.db.prepare('SELECT result, checks FROM probe_cache WHERE key = ?').get(key) as
      Row | undefined;
    if (!row) return undefined;
    const checks = JSON.parse(row.checks) as Array<[string, Identity]>;
    const now = await Promise.all(checks.map(([path]) => identity(path)));
    if (checks.some(([, id], index) => now[index]!.id !== id)) {
      this.db.prepare('DELETE FROM probe_cache WHERE key = ?').run(key);
      return undefined;
    }
    this.db.prepare('UPDATE probe_cache SET used_at = ? WHERE key = ?').run(Date.now(), key);
    return JSON.parse(row.result) as ProbeResult;
  }

  /**
   * Remembers `result`, probed from `file` starting at `startedNs` (wall clock, ns) with the .blend's
   * identity `before` taken before the probe started. Nothing is remembered when a file it depends
   * on changed during the probe or just before it.
   */
  async put(
    blenderPath: string,
    file: string,
    scene: string | undefined,
    result: ProbeResult,
    before: Identity,
    startedNs: bigint,
  ): Promise<boolean> {
    const paths = new Set<string>([file]);
    for (const dependency of result.dependencies) paths.add(dependency.path);
    for (const dir of result.scannedDirs ?? []) paths.add(dir);
    const list = [...paths];
    const identities = await Promise.all(list.map((path) => identity(path)));
    if (identities[0]!.id !== before || before === 'missing') return false;
    if (identities.some((i) => i.mtimeNs !== null && i.mtimeNs > startedNs - RACY_WINDOW_NS)) return false;
    const checks = list.map((path, index) => [path, identities[index]!.id]);
    const blender = (await identity(blenderPath)).id;
    const key = ProbeCache.key(blender, blenderPath, file, scene);
    this.db
      .prepare(
        `INSERT INTO probe_cache (key, result, checks, used_at) VALUES (?, ?, ?, ?)
         ON CONFLICT(key) DO UPDATE SET result = excluded.result, checks = excluded.checks, used_at = excluded.used_at`,
      )
      .run(key, JSON.stringify(result), JSON.stringify(checks), Date.now());
    this.db
      .prepare(
        `DELETE FROM probe_cache WHERE key NOT IN
           (SELECT key FROM probe_cache ORDER BY used_at DESC LIMIT ?)`,
      )
      .run(PROBE_CACHE_MAX_ENTRIES);
    return true;
  }

  /** Wraps a probe: a remembered result when valid, else a probe whose result is remembered. */
  wrap(probe: Probe): Probe {
    return async (blender, file, scene, options = {}) => {
      // A one-off file (the add-on's temporary copy, removed after its upload) is neither looked up
      // nor remembered: its rows would only fill the table.
      if (options.remember === false) return probe(blender, file, scene, options);
      const cached = await this.get(blender, file, scene);
      if (cached) {
        this.stats.hits += 1;
        return cached;
      }
      this.stats.misses += 1;
      const before = (await identity(file)).id;
      const startedNs = BigInt(Date.now()) * 1_000_000n;
      const result = await probe(blender, file, scene, options);
      await this.put(blender, file, scene, result, before, startedNs);
      return result;
    };
  }
}
