import type { Metric } from '../lib/types.js';

export const daemonIdleRssMb: Metric = {
  name: 'daemon_idle_rss_mb',
  unit: '?',
  goal: { on: 'value', op: '<=', target: 0 },
  async run() {
    return { value: null, note: 'not written yet' };
  },
};
