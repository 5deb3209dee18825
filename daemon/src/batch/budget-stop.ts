// Stopping a job at its budget (daemon/src/cost/): stop.json says why (publish puts it in the result
// and the mail), then copy and render are terminated; the stack's publish-after-failure rule publishes
// the finished frames and the job ends with BUDGET_REACHED. Safe to repeat (a restarted daemon does).
import type { AwsJobRow } from './aws-store.js';
import type { IBatch } from './batch-api.js';
import type { IBucket } from './bucket.js';
import { jobKeys, type StopRequest } from './layout.js';
import { TERMINAL } from './status.js';

export async function stopAtBudget(
  row: AwsJobRow,
  clients: { bucket: IBucket; batch: IBatch },
  reason: string,
  say: (line: string) => void,
): Promise<void> {
  if (row.canceledAt || row.finishedAt || !row.preparedAt) return;
  const { jobId } = row;
  const request: StopRequest = { jobId, reason, at: new Date().toISOString() };
  await clients.bucket.putJson(jobKeys(jobId).stop, request);
  const ids = (['copy', 'render'] as const).flatMap((stage) =>
    row.batchIds[stage] ? [[stage, row.batchIds[stage]] as const] : [],
  );
  const infos = new Map(
    ids.length ? (await clients.batch.describe(ids.map(([, id]) => id))).map((i) => [i.jobId, i]) : [],
  );
  for (const [stage, id] of ids) {
    const info = infos.get(id);
    if (info && !TERMINAL.has(info.status)) {
      await clients.batch.terminate(id, `skyfarm: ${reason}`);
      say(`${reason}: terminated ${stage} job ${id}`);
    }
  }
}
