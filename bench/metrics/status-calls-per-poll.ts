import type { Metric } from '../lib/types.js';

export const statusCallsPerPoll: Metric = {
  name: 'status_calls_per_poll',
  unit: '?',
  goal: { on: 'value', op: '<=', target: 0 },
  async run() {
    return { value: null, note: 'not written yet' };
  },
};
