import type { Metric } from '../lib/types.js';

export const localRenderRatioVsBlender: Metric = {
  name: 'local_render_ratio_vs_blender',
  unit: '?',
  goal: { on: 'value', op: '<=', target: 0 },
  async run() {
    return { value: null, note: 'not written yet' };
  },
};
