// What every stage gets: its configuration, the bucket, the mailer, a cancellation signal and a log
// line writer (stdout goes to the job's CloudWatch log stream).
import type { IBucket } from '../../daemon/src/batch/bucket.js';
import type { WorkerConfig } from './config.js';
import type { Mail } from './mail.js';

export interface WorkerContext {
  config: WorkerConfig;
  bucket: IBucket;
  env: NodeJS.ProcessEnv;
  signal: AbortSignal;
  log: (line: string) => void;
  sendMail: (from: string, to: string, mail: Mail) => Promise<{ messageId?: string }>;
}
