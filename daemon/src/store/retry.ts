// Retries around whole store operations. The SDK already retries each request; this layer covers
// what it cannot: a download whose body stream breaks half-way, a multipart upload whose part
// failed after the SDK's attempts, a blob whose bytes did not verify.
import { SkyfarmError } from '../errors.js';
import { onAbort } from '../util/abort-fanout.js';
import { BlobChangedError, IntegrityError } from './object-store.js';

const NETWORK_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'EPIPE',
  'ETIMEDOUT',
  'EAI_AGAIN',
  'ERR_STREAM_PREMATURE_CLOSE',
  'UND_ERR_SOCKET',
]);
const PERMANENT_NAMES = new Set([
  'NoSuchBucket',
  'AccessDenied',
  'InvalidAccessKeyId',
  'SignatureDoesNotMatch',
  'ExpiredToken',
  'CredentialsProviderError',
  'InvalidBucketName',
]);

interface ErrorLike {
  name?: string;
  code?: string;
  message?: string;
  $retryable?: unknown;
  $metadata?: { httpStatusCode?: number };
  cause?: unknown;
}

/** Whether trying the same operation again could succeed. */
export function isTransient(error: unknown): boolean {
  if (error instanceof IntegrityError) return true;
  if (error instanceof BlobChangedError || error instanceof SkyfarmError) return false;
  const e = (error ?? {}) as ErrorLike;
  if (e.name === 'AbortError') return false;
  if (e.name && PERMANENT_NAMES.has(e.name)) return false;
  // S3 refused bytes that did not match their SHA-256 (damaged on the way): sending again can succeed.
  if (e.name === 'BadDigest' || e.name === 'XAmzContentSHA256Mismatch') return true;
  if (e.$retryable) return true;
  if (e.code && NETWORK_CODES.has(e.code)) return true;
  if (e.name === 'TimeoutError' || e.name === 'RequestTimeout' || e.name === 'RequestTimeTooSkewed')
    return true;
  const status = e.$metadata?.httpStatusCode;
  if (status !== undefined) return status >= 500 || status === 408 || status === 429;
  if (/socket hang up|premature close|ECONNRESET|EPIPE|aborted/i.test(e.message ?? '')) return true;
  return e.cause !== undefined && e.cause !== error ? isTransient(e.cause) : false;
}

export interface RetryOptions {
  attempts?: number;
  signal?: AbortSignal;
  /** First back-off; doubles per attempt, with jitter. */
  baseDelayMs?: number;
  onRetry?: (error: unknown, attempt: number) => void;
}

export async function withRetries<T>(
  fn: (attempt: number) => Promise<T>,
  options: RetryOptions = {},
): Promise<T> {
  const attempts = options.attempts ?? 4;
  const base = options.baseDelayMs ?? 100;
  for (let attempt = 1; ; attempt++) {
    options.signal?.throwIfAborted();
    try {
      return await fn(attempt);
    } catch (error) {
      if (options.signal?.aborted) throw options.signal.reason ?? error;
      if (attempt >= attempts || !isTransient(error)) throw error;
      options.onRetry?.(error, attempt);
      const delay = base * 2 ** (attempt - 1) * (0.5 + Math.random());
      await pause(delay, options.signal);
    }
  }
}

/**
 * Waits `ms`, or rejects with the signal's reason when it aborts first. The many transfers of one
 * upload retry under one signal: their waits share one listener on it (a listener each piled up).
 */
function pause(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      unwatch();
      resolve();
    }, ms);
    const unwatch = signal
      ? onAbort(signal, () => {
          clearTimeout(timer);
          reject(signal.reason);
        })
      : () => undefined;
  });
}
