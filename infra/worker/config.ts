// The worker is configured by its environment (what AWS Batch and the job definition set) plus
// jobs/<jobId>/job.json. The only arguments are the stage and, for the publish that the stack's
// EventBridge rule submits after a failed render, `--job-id` and `--reason` (EventBridge can pass
// values to a Batch job only as parameters, which Batch substitutes into the command line).
import { parseArgs } from 'node:util';
import type { Stage } from '../../daemon/src/batch/layout.js';

export interface WorkerConfig {
  stage: Stage;
  jobId: string;
  bucket: string;
  efsRoot: string;
  /** AWS_BATCH_JOB_ARRAY_INDEX; null for a job that is not an array child (one chunk). */
  arrayIndex: number | null;
  /** AWS_BATCH_JOB_ATTEMPT, 1 for the first. */
  attempt: number;
  /** The Batch job id, for messages. */
  batchJobId: string | null;
  /** publish: the job's render failed (set by the EventBridge rule's job definition). */
  afterFailure: boolean;
  /** publish: why the render failed, as Batch reported it. */
  reason: string | null;
}

export class ConfigError extends Error {}

const STAGES: readonly Stage[] = ['copy', 'render', 'publish'];

function integer(value: string | undefined, name: string, min: number): number | null {
  if (value === undefined || value.trim() === '') return null;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < min)
    throw new ConfigError(`${name} must be a whole number ≥ ${min}, not "${value}"`);
  return n;
}

export function readConfig(argv: string[], env: NodeJS.ProcessEnv): WorkerConfig {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      'job-id': { type: 'string' },
      reason: { type: 'string' },
      'after-failure': { type: 'boolean', default: false },
    },
  });
  const stageName = positionals[0] ?? env['SKYFARM_STAGE'];
  if (!stageName || !STAGES.includes(stageName as Stage) || positionals.length > 1) {
    throw new ConfigError('usage: skyfarm-worker copy|render|publish (or SKYFARM_STAGE)');
  }
  const stage = stageName as Stage;
  // A Batch parameter that was never filled in arrives as its default ('-') or its placeholder.
  const given = (value: string | undefined) =>
    value !== undefined && value !== '-' && value !== '' && !value.startsWith('Ref::') ? value : undefined;
  const fromArgs = given(values['job-id']);
  const jobId = (env['SKYFARM_JOB_ID'] || fromArgs || '').trim();
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(jobId)) {
    throw new ConfigError(`SKYFARM_JOB_ID must be a skyfarm job id, not "${jobId}"`);
  }
  const bucket = (env['SKYFARM_BUCKET'] ?? '').trim();
  if (!bucket) throw new ConfigError('SKYFARM_BUCKET is not set');
  const efsRoot = (env['SKYFARM_EFS_ROOT'] ?? '').trim() || '/mnt/efs';
  const reason = given(values.reason) ?? null;
  return {
    stage,
    jobId,
    bucket,
    efsRoot,
    arrayIndex: integer(env['AWS_BATCH_JOB_ARRAY_INDEX'], 'AWS_BATCH_JOB_ARRAY_INDEX', 0),
    attempt: integer(env['AWS_BATCH_JOB_ATTEMPT'], 'AWS_BATCH_JOB_ATTEMPT', 1) ?? 1,
    batchJobId: env['AWS_BATCH_JOB_ID'] ?? null,
    afterFailure: values['after-failure'] ?? false,
    reason,
  };
}
