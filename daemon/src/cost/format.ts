// How a cost reads everywhere it is shown (CLI, job message, mail): always an estimate ("≈"), with its
// basis, or "cost unknown" with the reason.
import type { JobCost } from '../../../protocol/generated/protocol.js';
import { costUnknownText } from './unknown.js';

export function formatUsd(usd: number): string {
  if (usd > 0 && usd < 0.01) return `$${usd.toFixed(4)}`;
  return `$${usd.toFixed(2)}`;
}

/** "≈ $0.42 so far · projected ≈ $1.10 ($0.95–$1.30) · budget $2.00" (one line). */
export function costSummary(cost: JobCost, finished: boolean): string {
  if (!cost.known || cost.usd === undefined) return costUnknownText(cost);
  const parts = [`≈ ${formatUsd(cost.usd)}${finished ? '' : ' so far'}`];
  if (!finished && cost.projectedUsd !== undefined) {
    const low = cost.projectedLowUsd ?? cost.projectedUsd;
    const high = cost.projectedHighUsd ?? cost.projectedUsd;
    const range = high - low >= 0.005 ? ` (${formatUsd(low)}–${formatUsd(high)})` : '';
    parts.push(`projected ≈ ${formatUsd(cost.projectedUsd)}${range}`);
  }
  if (cost.maxCostUsd !== undefined) {
    const note =
      cost.budget === 'reached'
        ? ' reached'
        : cost.budget === 'projected-over' && !finished
          ? ' (the projection exceeds it)'
          : '';
    parts.push(`budget ${formatUsd(cost.maxCostUsd)}${note}`);
  }
  return parts.join(' · ');
}

/** The summary with its basis: what a cost line in `status` and the mail says. */
export function costLine(cost: JobCost, finished: boolean): string {
  const summary = costSummary(cost, finished);
  return cost.known && cost.basis ? `${summary} (${cost.basis})` : summary;
}
