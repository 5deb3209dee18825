import type { Metric } from '../lib/types.js';

export const addonTickMs: Metric = {
  name: 'addon_tick_ms',
  unit: '?',
  goal: { on: 'value', op: '<=', target: 0 },
  async run() {
    return { value: null, note: 'not written yet' };
  },
};
