// The S3 calls the content-addressed store needs, as a narrow interface over the real SDK v3 client:
// head, list (pagination inside), put of a buffer, multipart upload of a stream through
// @aws-sdk/lib-storage, get, delete, and the multipart bookkeeping that keeps a canceled upload from
// leaving parts behind.
//
// Integrity, one hash: a single PUT carries the blob's SHA-256 as `x-amz-checksum-sha256` and as the
// signed payload hash (`x-amz-content-sha256`); S3 rejects a body that matches neither (BadDigest,
// retried: the bytes were damaged on the way), and the checksum it echoes must be the one sent. Every
// multipart part is hashed once, and that SHA-256 goes out the same two ways. No MD5 is computed:
// ETags are not checked (S3's own checksum check is stronger, and holds with SSE-KMS too).
import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { S3Client, S3ClientConfig } from '@aws-sdk/client-s3';
import type * as S3Sdk from '@aws-sdk/client-s3';
import type * as StorageSdk from '@aws-sdk/lib-storage';
import { SkyfarmError } from '../errors.js';
import { IntegrityError } from './object-store.js';
import { withRetries } from './retry.js';
import { lazySdk } from '../aws/lazy-sdk.js';

const s3Sdk = lazySdk<typeof S3Sdk>('@aws-sdk/client-s3');
const storageSdk = lazySdk<typeof StorageSdk>('@aws-sdk/lib-storage');

export interface S3ObjectHead {
  size: number;
  etag?: string;
  checksumSha256?: string;
}

export interface S3ListEntry {
  key: string;
  size: number;
}

export interface S3ListPage {
  entries: S3ListEntry[];
  /** More pages follow. */
  more: boolean;
}

export interface S3PutOptions {
  contentType?: string;
  /** Base64 SHA-256 of the body, sent as `x-amz-checksum-sha256` (S3 verifies it). */
  checksumSha256?: string;
  /**
   * Hex SHA-256 of the body when the caller knows it: sent as the signed payload hash
   * (`x-amz-content-sha256`, which S3 checks the body against), so the SDK does not hash it again.
   */
  sha256Hex?: string;
  signal?: AbortSignal;
}

export interface S3MultipartOptions {
  size: number;
  partSize: number;
  /** Parts in flight for this upload. */
  queueSize: number;
  signal?: AbortSignal;
  /** Called with the size of each part once S3 has it. */
  onPart?: (bytes: number) => void;
}

export interface S3MultipartUpload {
  key: string;
  uploadId: string;
  initiated?: Date;
}

export interface IS3 {
  readonly bucket: string;
  /** `s3://bucket` plus the endpoint when it is not AWS's own. */
  readonly location: string;
  /** Requests sent so far (every SDK attempt counts once per call here, retries not included). */
  readonly requests: number;
  head(key: string, signal?: AbortSignal): Promise<S3ObjectHead | undefined>;
  /** Every object under the prefix, page by page (1000 per request). */
  list(prefix: string, signal?: AbortSignal): AsyncGenerator<S3ListPage>;
  put(key: string, body: Buffer, options?: S3PutOptions): Promise<void>;
  /** Multipart upload of a stream; on failure or abort no part is left behind. */
  uploadMultipart(key: string, body: Readable, options: S3MultipartOptions): Promise<void>;
  /** The object's bytes, or undefined when it does not exist. */
  /** The object's bytes, or `range` of them (`{ start, end }`, end inclusive, as HTTP's Range). */
  get(
    key: string,
    signal?: AbortSignal,
    range?: { start: number; end: number },
  ): Promise<Readable | undefined>;
  delete(key: string): Promise<void>;
  listMultipartUploads(prefix: string): Promise<S3MultipartUpload[]>;
  abortMultipartUpload(key: string, uploadId: string): Promise<void>;
}

export interface S3Settings {
  bucket: string;
  region: string;
  endpoint?: string;
  credentials?: S3ClientConfig['credentials'];
  /** SDK attempts per request (default 6: uploads meet flaky links). */
  maxAttempts?: number;
  /** Sockets per host (default 64). */
  maxSockets?: number;
}

/** Settings from `env` (not necessarily process.env): region, AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL, static keys. */
export function s3SettingsFromEnv(bucket: string, env: NodeJS.ProcessEnv): S3Settings {
  const endpoint =
    env['AWS_IGNORE_CONFIGURED_ENDPOINT_URLS'] === 'true'
      ? undefined
      : env['AWS_ENDPOINT_URL_S3'] || env['AWS_ENDPOINT_URL'] || undefined;
  const accessKeyId = env['AWS_ACCESS_KEY_ID'];
  const secretAccessKey = env['AWS_SECRET_ACCESS_KEY'];
  const region = env['AWS_REGION'] || env['AWS_DEFAULT_REGION'] || (endpoint ? 'us-east-1' : undefined);
  if (!region) {
    throw new SkyfarmError(
      'AWS_NO_REGION',
      'No AWS region configured: set AWS_REGION (e.g. AWS_REGION=eu-central-1)',
    );
  }
  return {
    bucket,
    region,
    ...(endpoint ? { endpoint } : {}),
    ...(accessKeyId && secretAccessKey
      ? {
          credentials: {
            accessKeyId,
            secretAccessKey,
            ...(env['AWS_SESSION_TOKEN'] ? { sessionToken: env['AWS_SESSION_TOKEN'] } : {}),
          },
        }
      : {}),
  };
}

/** Uploads of the same key begun this long before ours still count as ours when sweeping (clock skew). */
const SWEEP_SKEW_MS = 60_000;

const BUCKET_NAME = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

export function assertBucketName(bucket: string): void {
  if (!BUCKET_NAME.test(bucket))
    throw new SkyfarmError('BAD_ARGUMENT', `"${bucket}" is not a valid S3 bucket name`);
}

/**
 * S3 answers a PUT or part with the checksum it computed of what it stored; a store that echoes one
 * must echo ours. (One that echoes none, such as s3rver 3.7, verified nothing: see TESTING.md.)
 */
function checkEcho(echoed: unknown, sent: string | undefined, what: string): void {
  if (sent && typeof echoed === 'string' && echoed !== sent)
    throw new IntegrityError(`${what}: S3 computed SHA-256 ${echoed}, sent ${sent}`);
}

/** Sends `hex` as the signed payload hash, so the SDK does not hash the body a second time. */
function withPayloadHash(command: { middlewareStack: unknown }, hex: string): void {
  (command.middlewareStack as S3Sdk.PutObjectCommand['middlewareStack']).add(
    (next) => async (args) => {
      const request = args.request as { headers?: Record<string, string> };
      if (request.headers) request.headers['x-amz-content-sha256'] = hex;
      return next(args);
    },
    { step: 'build', name: 'skyfarmPayloadHash' },
  );
}

function errorName(error: unknown): string {
  return (error as { name?: string })?.name ?? '';
}

function isNotFound(error: unknown): boolean {
  const e = error as { name?: string; $metadata?: { httpStatusCode?: number } };
  return e?.name === 'NotFound' || e?.name === 'NoSuchKey' || e?.$metadata?.httpStatusCode === 404;
}

export function createS3(settings: S3Settings): IS3 {
  assertBucketName(settings.bucket);
  const client = new s3Sdk.S3Client({
    region: settings.region,
    ...(settings.credentials ? { credentials: settings.credentials } : {}),
    // Custom endpoints (MinIO, emulators) use path-style addressing.
    ...(settings.endpoint ? { endpoint: settings.endpoint, forcePathStyle: true } : {}),
    maxAttempts: settings.maxAttempts ?? 6,
    // Checksums are set explicitly per request (header form, never aws-chunked trailers).
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    requestHandler: {
      connectionTimeout: 10_000,
      requestTimeout: 120_000,
      httpAgent: { keepAlive: true, maxSockets: settings.maxSockets ?? 64 },
      httpsAgent: { keepAlive: true, maxSockets: settings.maxSockets ?? 64 },
    },
  });
  const Bucket = settings.bucket;
  let requests = 0;
  // One untyped entry point: the SDK's overloads do not accept a union of commands.
  const rawSend = client.send.bind(client) as unknown as (
    command: unknown,
    options: { abortSignal?: AbortSignal },
  ) => Promise<unknown>;
  const send = <T>(command: unknown, signal?: AbortSignal): Promise<T> => {
    requests += 1;
    return rawSend(command, signal ? { abortSignal: signal } : {}) as Promise<T>;
  };

  const api: IS3 = {
    bucket: Bucket,
    location: `s3://${Bucket}${settings.endpoint ? `@${settings.endpoint}` : ''}`,
    get requests() {
      return requests;
    },

    async head(key, signal) {
      try {
        const out = await send<{ ContentLength?: number; ETag?: string; ChecksumSHA256?: string }>(
          new s3Sdk.HeadObjectCommand({ Bucket, Key: key, ChecksumMode: 'ENABLED' }),
          signal,
        );
        return {
          size: out.ContentLength ?? 0,
          ...(out.ETag ? { etag: out.ETag } : {}),
          ...(out.ChecksumSHA256 ? { checksumSha256: out.ChecksumSHA256 } : {}),
        };
      } catch (error) {
        if (isNotFound(error)) return undefined;
        throw error;
      }
    },

    async *list(prefix, signal) {
      let token: string | undefined;
      for (let page = 0; page < 1_000_000; page++) {
        const out = await send<{
          Contents?: Array<{ Key?: string; Size?: number }>;
          IsTruncated?: boolean;
          NextContinuationToken?: string;
        }>(
          new s3Sdk.ListObjectsV2Command({ Bucket, Prefix: prefix, ContinuationToken: token, MaxKeys: 1000 }),
          signal,
        );
        const more = Boolean(out.IsTruncated && out.NextContinuationToken);
        yield {
          entries: (out.Contents ?? []).flatMap((o) => (o.Key ? [{ key: o.Key, size: o.Size ?? 0 }] : [])),
          more,
        };
        if (!more) return;
        token = out.NextContinuationToken;
      }
    },

    async put(key, body, options = {}) {
      const command = new s3Sdk.PutObjectCommand({
        Bucket,
        Key: key,
        Body: body,
        ContentLength: body.length,
        ...(options.contentType ? { ContentType: options.contentType } : {}),
        ...(options.checksumSha256 ? { ChecksumSHA256: options.checksumSha256 } : {}),
      });
      if (options.sha256Hex) withPayloadHash(command, options.sha256Hex);
      const out = await send<{ ChecksumSHA256?: string }>(command, options.signal);
      checkEcho(out.ChecksumSHA256, options.checksumSha256, key);
    },

    async uploadMultipart(key, body, options) {
      const uploadIds = new Set<string>();
      // The upload is created with ChecksumAlgorithm SHA256, so S3 wants every part's checksum again
      // in CompleteMultipartUpload. lib-storage copies only what S3 echoed: name each part's own.
      const partChecksums = new Map<number, string>();
      const withPartChecksums = (input: Record<string, unknown>) => {
        const parts = (input['MultipartUpload'] as { Parts?: Array<Record<string, unknown>> } | undefined)
          ?.Parts;
        for (const part of parts ?? []) {
          const sent = partChecksums.get(Number(part['PartNumber']));
          if (sent) part['ChecksumSHA256'] = sent;
        }
      };
      let inflight = 0;
      let completed = false;
      const signal = options.signal;
      // lib-storage sends through this wrapper: it passes our abort signal to the data-carrying requests
      // (so a cancel stops parts mid-flight), learns every upload id, and hashes every part once for
      // both S3 checks (checksum and payload hash; the SDK would hash it twice) and the echo check.
      // Create and Abort are never interrupted: an upload id we did not learn would be an orphan.
      const tracked = {
        config: client.config,
        send: async (command: { input: Record<string, unknown> }) => {
          inflight += 1;
          requests += 1;
          try {
            const interruptible =
              command instanceof s3Sdk.UploadPartCommand ||
              command instanceof s3Sdk.PutObjectCommand ||
              command instanceof s3Sdk.CompleteMultipartUploadCommand;
            let checksum: string | undefined;
            if (command instanceof s3Sdk.UploadPartCommand || command instanceof s3Sdk.PutObjectCommand) {
              const digest = createHash('sha256')
                .update(command.input['Body'] as Uint8Array)
                .digest();
              checksum = digest.toString('base64');
              command.input['ChecksumSHA256'] = checksum;
              withPayloadHash(command as unknown as { middlewareStack: unknown }, digest.toString('hex'));
              if (command instanceof s3Sdk.UploadPartCommand)
                partChecksums.set(Number(command.input['PartNumber']), checksum);
            }
            if (command instanceof s3Sdk.CompleteMultipartUploadCommand) withPartChecksums(command.input);
            const out = (await rawSend(
              command,
              interruptible && signal ? { abortSignal: signal } : {},
            )) as Record<string, unknown>;
            if (
              command instanceof s3Sdk.CreateMultipartUploadCommand &&
              typeof out['UploadId'] === 'string'
            ) {
              uploadIds.add(out['UploadId']);
            }
            if (command instanceof s3Sdk.UploadPartCommand || command instanceof s3Sdk.PutObjectCommand) {
              const part = command.input['Body'] as Uint8Array;
              checkEcho(
                out['ChecksumSHA256'],
                checksum,
                `${key} part ${String(command.input['PartNumber'] ?? 1)}`,
              );
              options.onPart?.(part.length);
            }
            if (
              command instanceof s3Sdk.CompleteMultipartUploadCommand ||
              command instanceof s3Sdk.PutObjectCommand
            ) {
              completed = true;
            }
            return out;
          } finally {
            inflight -= 1;
          }
        },
      };
      const upload = new storageSdk.Upload({
        client: tracked as unknown as S3Client,
        params: { Bucket, Key: key, Body: body, ContentLength: options.size, ChecksumAlgorithm: 'SHA256' },
        partSize: options.partSize,
        queueSize: options.queueSize,
        // We abort ourselves, after every part request has ended (lib-storage would race them).
        leavePartsOnError: true,
      });
      const onAbort = () => void upload.abort();
      signal?.addEventListener('abort', onAbort, { once: true });
      const since = Date.now() - SWEEP_SKEW_MS;
      // A CreateMultipartUpload whose answer was lost left an upload we never heard of: abort every
      // upload of this key begun since this one (best effort: without ListMultipartUploads permission,
      // the bucket's AbortIncompleteMultipartUpload lifecycle rule is the backstop).
      const sweep = async () => {
        try {
          for (const open of await api.listMultipartUploads(key)) {
            if (open.key !== key || (open.initiated && open.initiated.getTime() < since)) continue;
            await api.abortMultipartUpload(key, open.uploadId).catch(() => undefined);
          }
        } catch {
          // not allowed or not implemented here
        }
      };
      try {
        await upload.done();
        await sweep();
      } catch (error) {
        // A retried CompleteMultipartUpload whose first answer was lost finds the upload gone: S3
        // completed it. Check the object is there at its size (the caller verifies the bytes sent).
        if (errorName(error) === 'NoSuchUpload' && !signal?.aborted) {
          const head = await api.head(key).catch(() => undefined);
          if (head && head.size === options.size) {
            await sweep();
            return;
          }
        }
        body.destroy();
        // Wait until lib-storage's part loops have stopped, then abort every upload id it created.
        const loops = (upload as unknown as { concurrentUploaders?: unknown }).concurrentUploaders;
        if (Array.isArray(loops)) await Promise.allSettled(loops as Array<Promise<unknown>>);
        for (let i = 0; inflight > 0 && i < 600; i++) await new Promise((r) => setTimeout(r, 50));
        const leftBehind: string[] = [];
        if (!completed) {
          for (const uploadId of uploadIds) {
            await withRetries(() => api.abortMultipartUpload(key, uploadId), { attempts: 5 }).catch(
              (abortError: unknown) => leftBehind.push(`${uploadId} (${(abortError as Error).message})`),
            );
          }
        }
        await sweep();
        const reason = signal?.aborted ? (signal.reason ?? error) : error;
        if (leftBehind.length && reason instanceof Error) {
          reason.message += `; could not abort multipart upload ${leftBehind.join(', ')} of ${key}`;
        }
        throw reason;
      } finally {
        signal?.removeEventListener('abort', onAbort);
      }
    },

    async get(key, signal, range) {
      try {
        const out = await send<{ Body?: Readable }>(
          new s3Sdk.GetObjectCommand({
            Bucket,
            Key: key,
            ...(range ? { Range: `bytes=${range.start}-${range.end}` } : {}),
          }),
          signal,
        );
        return out.Body;
      } catch (error) {
        if (isNotFound(error)) return undefined;
        throw error;
      }
    },

    async delete(key) {
      await send(new s3Sdk.DeleteObjectCommand({ Bucket, Key: key }));
    },

    async listMultipartUploads(prefix) {
      const found: S3MultipartUpload[] = [];
      let keyMarker: string | undefined;
      let uploadIdMarker: string | undefined;
      for (let page = 0; page < 10_000; page++) {
        const out = await send<{
          Uploads?: Array<{ Key?: string; UploadId?: string; Initiated?: Date }>;
          IsTruncated?: boolean;
          NextKeyMarker?: string;
          NextUploadIdMarker?: string;
        }>(
          new s3Sdk.ListMultipartUploadsCommand({
            Bucket,
            Prefix: prefix,
            KeyMarker: keyMarker,
            UploadIdMarker: uploadIdMarker,
          }),
        );
        for (const u of out.Uploads ?? []) {
          if (u.Key && u.UploadId) {
            found.push({
              key: u.Key,
              uploadId: u.UploadId,
              ...(u.Initiated ? { initiated: u.Initiated } : {}),
            });
          }
        }
        if (!out.IsTruncated) break;
        keyMarker = out.NextKeyMarker;
        uploadIdMarker = out.NextUploadIdMarker;
      }
      return found;
    },

    async abortMultipartUpload(key, uploadId) {
      try {
        await send(new s3Sdk.AbortMultipartUploadCommand({ Bucket, Key: key, UploadId: uploadId }));
      } catch (error) {
        if (errorName(error) === 'NoSuchUpload' || isNotFound(error)) return;
        throw error;
      }
    },
  };
  return api;
}
