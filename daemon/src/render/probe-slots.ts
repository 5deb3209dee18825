// Inspecting a scene starts a headless Blender (~150 MB, 1–3 s). Twenty submissions at once must not
// start twenty Blenders: probes wait for one of a few slots; a waiting probe can still be aborted.
import { Semaphore } from '../util/semaphore.js';
import type { probeBlend } from './blender.js';

type Probe = typeof probeBlend;

/** Default: two probes at a time, enough to keep submissions snappy without starving renders. */
export const DEFAULT_PROBE_SLOTS = 2;

export function withProbeSlots(probe: Probe, slots = DEFAULT_PROBE_SLOTS): Probe {
  const semaphore = new Semaphore(slots);
  return async (blender, file, scene, options = {}) => {
    const release = await semaphore.acquire(options.signal);
    try {
      return await probe(blender, file, scene, options);
    } finally {
      release();
    }
  };
}
