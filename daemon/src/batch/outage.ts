// What the AWS backend does while AWS does not answer: which errors mean "unreachable" (throttling,
// 5xx, network), the back-off between status polls (exponential, with jitter, capped), and the job
// message that says so — "AWS unreachable since 12:03 (3 min): <short error>; retrying" — with
// nothing secret in it (no query strings, signatures, credentials or tokens).
import { SkyfarmError } from '../errors.js';
import { isTransient } from '../store/retry.js';

interface ErrorLike {
  name?: string;
  code?: string;
  Code?: string;
  message?: string;
  $metadata?: { httpStatusCode?: number };
  cause?: unknown;
}

/** Error names AWS services use for "slow down" (Batch, S3, STS, CloudWatch Logs, …). */
const THROTTLING = new Set([
  'ThrottlingException',
  'Throttling',
  'ThrottledException',
  'TooManyRequestsException',
  'RequestLimitExceeded',
  'RequestThrottled',
  'RequestThrottledException',
  'SlowDown',
  'ProvisionedThroughputExceededException',
]);

/** Network failures beyond those store/retry.ts already treats as transient. */
const NETWORK = new Set([
  'ENOTFOUND',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENETDOWN',
  'ECONNABORTED',
  'ESOCKETTIMEDOUT',
]);

/** AWS asks us to slow down: a throttling error name, HTTP 429, or HTTP 503. */
export function isThrottling(error: unknown): boolean {
  const e = (error ?? {}) as ErrorLike;
  for (const name of [e.name, e.code, e.Code]) if (name && THROTTLING.has(name)) return true;
  const status = e.$metadata?.httpStatusCode;
  return status === 429 || status === 503;
}

/** AWS did not answer usefully but may later: throttling, a server error, a network failure, a timeout. */
export function isUnreachable(error: unknown, depth = 0): boolean {
  if (error instanceof SkyfarmError) return false; // raised on purpose, with its own message
  if (isThrottling(error) || isTransient(error)) return true;
  const e = (error ?? {}) as ErrorLike;
  if (e.code && NETWORK.has(e.code)) return true;
  return depth < 3 && e.cause !== undefined && e.cause !== error ? isUnreachable(e.cause, depth + 1) : false;
}

export interface BackoffOptions {
  /** The first wait (the normal poll period). */
  baseMs: number;
  /** The longest wait. */
  maxMs: number;
  /** [0, 1) (default Math.random). */
  random?: () => number;
}

/**
 * Exponential back-off with "equal jitter": after the n-th failure in a row the wait is
 * min(max, base·2^(n-1)), of which half is fixed and half random, so failing clients spread out and
 * the wait still grows. `reset()` after a success.
 */
export class Backoff {
  private count = 0;
  constructor(private readonly options: BackoffOptions) {}

  /** Failures in a row so far. */
  get failures(): number {
    return this.count;
  }

  /** Records one more failure and returns the wait before the next try. */
  fail(): number {
    this.count += 1;
    const ceiling = Math.min(this.options.maxMs, this.options.baseMs * 2 ** Math.min(this.count - 1, 40));
    const random = (this.options.random ?? Math.random)();
    return Math.round(ceiling / 2 + (random * ceiling) / 2);
  }

  reset(): void {
    this.count = 0;
  }
}

const MAX_ERROR_CHARS = 160;

/** Removes what could be secret from an error text: query strings, signatures, keys, tokens. */
export function redact(text: string): string {
  return text
    .replace(/(https?:\/\/[^\s?#"']+)[?#][^\s"']*/gi, '$1?…')
    .replace(
      /\b(X-Amz-[A-Za-z-]+|Signature|AWSAccessKeyId|Credential|Security-?Token|Session-?Token|token|key)=[^&\s"']+/gi,
      '$1=…',
    )
    .replace(/\b(AKIA|ASIA)[A-Z0-9]{12,}\b/g, '$1…')
    .replace(/\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+/gi, '$1 …');
}

/** "TooManyRequestsException: Rate exceeded", "ECONNRESET: socket hang up": one line, short, redacted. */
export function shortError(error: unknown): string {
  const e = (error ?? {}) as ErrorLike;
  const status = e.$metadata?.httpStatusCode;
  const label =
    e.code ?? e.Code ?? (e.name && e.name !== 'Error' ? e.name : status ? `HTTP ${status}` : undefined);
  const message = (typeof e.message === 'string' ? e.message : String(error)).split(/\r?\n/)[0]!.trim();
  let text: string;
  if (!label) text = message || 'unknown error';
  else if (!message || message === label) text = label;
  else text = message.includes(label) ? message : `${label}: ${message}`;
  text = redact(text);
  return text.length > MAX_ERROR_CHARS ? `${text.slice(0, MAX_ERROR_CHARS - 1)}…` : text;
}

/** "40 s", "3 min", "2 h 05 min". */
export function formatSpan(ms: number): string {
  const seconds = Math.max(0, Math.round(ms / 1000));
  if (seconds < 60) return `${seconds} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min`;
  return `${Math.floor(minutes / 60)} h ${String(minutes % 60).padStart(2, '0')} min`;
}

export const OUTAGE_PREFIX = 'AWS unreachable since ';
/** The same for an error that is not an outage (expired credentials, access denied): it is retried too. */
export const FAILING_PREFIX = 'AWS requests failing since ';

/**
 * The job message while AWS does not answer, e.g. "AWS unreachable since 12:03 (3 min): ECONNRESET:
 * socket hang up; retrying" (the clock in the daemon's local time).
 */
export function outageMessage(since: number, now: number, error: unknown): string {
  const at = new Date(since);
  const clock = `${String(at.getHours()).padStart(2, '0')}:${String(at.getMinutes()).padStart(2, '0')}`;
  const prefix = isUnreachable(error) ? OUTAGE_PREFIX : FAILING_PREFIX;
  return `${prefix}${clock} (${formatSpan(now - since)}): ${shortError(error)}; retrying`;
}

/**
 * The message of a job canceled while AWS did not answer, e.g. "AWS unreachable since 12:03:
 * ECONNREFUSED: connect ECONNREFUSED; the Batch jobs will be terminated when it answers".
 */
export function cancelPendingMessage(since: number, error: unknown): string {
  const at = new Date(since);
  const clock = `${String(at.getHours()).padStart(2, '0')}:${String(at.getMinutes()).padStart(2, '0')}`;
  const prefix = isUnreachable(error) ? OUTAGE_PREFIX : FAILING_PREFIX;
  return `${prefix}${clock}: ${shortError(error)}; ${CANCEL_PENDING_SUFFIX}`;
}

export const CANCEL_PENDING_SUFFIX = 'the Batch jobs will be terminated when it answers';

export function isOutageMessage(message: string | null | undefined): boolean {
  return (
    typeof message === 'string' && (message.startsWith(OUTAGE_PREFIX) || message.startsWith(FAILING_PREFIX))
  );
}
