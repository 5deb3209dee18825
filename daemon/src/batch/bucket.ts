// A narrow view of one S3 bucket: JSON documents, files in and out, listings. Used by the daemon's AWS
// backend and by the container worker. Endpoints and credentials come from the SDK's own chain
// (`AWS_ENDPOINT_URL_S3`, `AWS_REGION`, …); nothing here is specific to the emulator the tests use.
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import { dirname, join, basename } from 'node:path';
import { randomBytes } from 'node:crypto';
import { pipeline } from 'node:stream/promises';
import type { Readable } from 'node:stream';
import type { S3Client, S3ClientConfig } from '@aws-sdk/client-s3';
import type * as S3Sdk from '@aws-sdk/client-s3';
import type * as StorageSdk from '@aws-sdk/lib-storage';
import { lazySdk } from '../aws/lazy-sdk.js';

const s3Sdk = lazySdk<typeof S3Sdk>('@aws-sdk/client-s3');
const storageSdk = lazySdk<typeof StorageSdk>('@aws-sdk/lib-storage');

export interface ObjectInfo {
  key: string;
  size: number;
  etag: string;
}

export interface IBucket {
  readonly name: string;
  getJson<T>(key: string, signal?: AbortSignal): Promise<T | undefined>;
  putJson(key: string, value: unknown): Promise<void>;
  /** Uploads a file (multipart when large). */
  putFile(key: string, file: string, options?: { contentType?: string; signal?: AbortSignal }): Promise<void>;
  /** Downloads to `dest` through a temporary name; `dest` is either absent or complete. */
  download(key: string, dest: string, signal?: AbortSignal): Promise<{ size: number }>;
  /** Every object under the prefix (all pages). */
  list(prefix: string, signal?: AbortSignal): Promise<ObjectInfo[]>;
  exists(key: string): Promise<boolean>;
  delete(key: string): Promise<void>;
}

/** Region, credentials and endpoint overrides for one AWS client (a subset of daemon/src/aws's AwsConfig). */
export interface ClientSettings {
  region: string;
  credentials?: S3ClientConfig['credentials'];
  endpoint?: string;
}

/**
 * Client settings read from `env` (not necessarily process.env): region, the service's
 * `AWS_ENDPOINT_URL_<SERVICE>` (else `AWS_ENDPOINT_URL`), and static keys when `env` carries them (else
 * the SDK's default credential chain: container role, profiles, …).
 */
export function settingsFromEnv(
  env: NodeJS.ProcessEnv,
  service: 'S3' | 'BATCH' | 'SESV2' | 'CLOUDWATCH_LOGS' | 'CODEBUILD' | 'ECR' | 'PRICING' | 'EC2' | 'ECS',
): ClientSettings {
  const endpoint =
    env['AWS_IGNORE_CONFIGURED_ENDPOINT_URLS'] === 'true'
      ? undefined
      : env[`AWS_ENDPOINT_URL_${service}`] || env['AWS_ENDPOINT_URL'] || undefined;
  const accessKeyId = env['AWS_ACCESS_KEY_ID'];
  const secretAccessKey = env['AWS_SECRET_ACCESS_KEY'];
  return {
    region: env['AWS_REGION'] || env['AWS_DEFAULT_REGION'] || 'us-east-1',
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

/** An S3 client the way every skyfarm component makes one. */
export function createS3Client(resolved: ClientSettings, extra: S3ClientConfig = {}): S3Client {
  return new s3Sdk.S3Client({
    region: resolved.region,
    ...(resolved.credentials ? { credentials: resolved.credentials } : {}),
    // Emulators and S3-compatible stores behind a custom endpoint need path-style addressing.
    ...(resolved.endpoint ? { endpoint: resolved.endpoint, forcePathStyle: true } : {}),
    // Streamed bodies with the default flexible checksums are stored corrupted by some emulators.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    ...extra,
  });
}

function isNotFound(error: unknown): boolean {
  const e = error as { name?: string; $metadata?: { httpStatusCode?: number } };
  return e?.name === 'NoSuchKey' || e?.name === 'NotFound' || e?.$metadata?.httpStatusCode === 404;
}

export class S3Bucket implements IBucket {
  constructor(
    private readonly client: S3Client,
    readonly name: string,
  ) {}

  async getJson<T>(key: string, signal?: AbortSignal): Promise<T | undefined> {
    try {
      const response = await this.client.send(
        new s3Sdk.GetObjectCommand({ Bucket: this.name, Key: key }),
        signal ? { abortSignal: signal } : {},
      );
      const text = await response.Body!.transformToString('utf8');
      return JSON.parse(text) as T;
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
  }

  async putJson(key: string, value: unknown): Promise<void> {
    const body = JSON.stringify(value, null, 2);
    await this.client.send(
      new s3Sdk.PutObjectCommand({
        Bucket: this.name,
        Key: key,
        Body: body,
        ContentType: 'application/json',
      }),
    );
  }

  async putFile(key: string, file: string, options: { contentType?: string; signal?: AbortSignal } = {}) {
    const { size } = await stat(file);
    if (size < 8 * 1024 * 1024) {
      await this.client.send(
        new s3Sdk.PutObjectCommand({
          Bucket: this.name,
          Key: key,
          Body: createReadStream(file),
          ContentLength: size,
          ...(options.contentType ? { ContentType: options.contentType } : {}),
        }),
        options.signal ? { abortSignal: options.signal } : {},
      );
      return;
    }
    const upload = new storageSdk.Upload({
      client: this.client,
      params: {
        Bucket: this.name,
        Key: key,
        Body: createReadStream(file),
        ...(options.contentType ? { ContentType: options.contentType } : {}),
      },
      queueSize: 4,
      partSize: 8 * 1024 * 1024,
    });
    const abort = () => void upload.abort();
    options.signal?.addEventListener('abort', abort, { once: true });
    try {
      await upload.done();
    } finally {
      options.signal?.removeEventListener('abort', abort);
    }
  }

  async download(key: string, dest: string, signal?: AbortSignal): Promise<{ size: number }> {
    await mkdir(dirname(dest), { recursive: true });
    const temp = join(dirname(dest), `.${basename(dest)}.${randomBytes(4).toString('hex')}.part`);
    try {
      const response = await this.client.send(
        new s3Sdk.GetObjectCommand({ Bucket: this.name, Key: key }),
        signal ? { abortSignal: signal } : {},
      );
      await pipeline(response.Body as Readable, createWriteStream(temp), signal ? { signal } : {});
      const { size } = await stat(temp);
      if (response.ContentLength !== undefined && response.ContentLength !== size) {
        throw new Error(`s3://${this.name}/${key}: got ${size} bytes, expected ${response.ContentLength}`);
      }
      await rename(temp, dest);
      return { size };
    } finally {
      await rm(temp, { force: true });
    }
  }

  async list(prefix: string, signal?: AbortSignal): Promise<ObjectInfo[]> {
    const objects: ObjectInfo[] = [];
    let token: string | undefined;
    do {
      const page = await this.client.send(
        new s3Sdk.ListObjectsV2Command({
          Bucket: this.name,
          Prefix: prefix,
          ...(token ? { ContinuationToken: token } : {}),
        }),
        signal ? { abortSignal: signal } : {},
      );
      for (const item of page.Contents ?? []) {
        if (item.Key) objects.push({ key: item.Key, size: item.Size ?? 0, etag: item.ETag ?? '' });
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return objects;
  }

  async exists(key: string): Promise<boolean> {
    try {
      await this.client.send(new s3Sdk.HeadObjectCommand({ Bucket: this.name, Key: key }));
      return true;
    } catch (error) {
      if (isNotFound(error)) return false;
      throw error;
    }
  }

  async delete(key: string): Promise<void> {
    await this.client.send(new s3Sdk.DeleteObjectCommand({ Bucket: this.name, Key: key }));
  }
}
