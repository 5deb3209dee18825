// The S3 subset the stack service needs to empty the farm's bucket before deleting the stack, over the
// real SDK v3 client, with pagination inside.
import type { S3ClientConfig } from '@aws-sdk/client-s3';
import type * as S3Sdk from '@aws-sdk/client-s3';
import { SkyfarmError } from '../errors.js';
import type { AwsConfig } from './config.js';
import { awsErrorCode, mapAwsError } from './errors.js';
import { lazySdk } from './lazy-sdk.js';

const s3Sdk = lazySdk<typeof S3Sdk>('@aws-sdk/client-s3');

export interface ObjectRef {
  key: string;
  versionId?: string;
}

export interface DeleteFailure {
  key: string;
  code: string;
  message: string;
}

export interface IS3 {
  /** 'missing' when the bucket does not exist; 'unversioned' when versioning was never enabled. */
  bucketVersioning(bucket: string): Promise<'enabled' | 'suspended' | 'unversioned' | 'missing'>;
  /**
   * The first page (at most `pageSize`, ≤ 1000) of the bucket's objects, or of every version and
   * delete marker when `versions`. Emptying deletes a page and lists again, so it never depends on
   * continuation tokens of a listing whose objects it is deleting.
   */
  listFirstPage(bucket: string, options: { versions: boolean }): Promise<ObjectRef[]>;
  /** Deletes up to 1000 objects in one request; returns the per-object failures. */
  deleteObjects(bucket: string, objects: ObjectRef[]): Promise<DeleteFailure[]>;
}

export interface S3Options {
  /** Keys per list page (S3 maximum and default: 1000). */
  pageSize?: number;
  /** Extra client settings (tests: forcePathStyle for a local emulator). */
  client?: Partial<S3ClientConfig>;
}

export function createS3(cfg: AwsConfig, options: S3Options = {}): IS3 {
  const endpoint = cfg.endpoints.s3;
  const s3 = new s3Sdk.S3Client({
    region: cfg.region,
    credentials: cfg.credentials,
    ...(cfg.profile ? { profile: cfg.profile } : {}),
    // Local S3 emulators (the only custom endpoints we expect) need path-style addressing.
    ...(endpoint ? { endpoint, forcePathStyle: true } : {}),
    ...options.client,
  });
  const pageSize = options.pageSize ?? 1000;
  const fail = (action: string, bucket: string) => (error: unknown) => {
    throw mapAwsError(error, { action: `s3:${action}`, resource: `arn:aws:s3:::${bucket}`, endpoint });
  };

  return {
    async bucketVersioning(bucket) {
      try {
        const out = await s3.send(new s3Sdk.GetBucketVersioningCommand({ Bucket: bucket }));
        if (out.Status === 'Enabled') return 'enabled';
        if (out.Status === 'Suspended') return 'suspended';
        return 'unversioned';
      } catch (error) {
        const code = awsErrorCode(error);
        if (code === 'NoSuchBucket') return 'missing';
        // Emulators without versioning support answer NotImplemented: nothing can be versioned there.
        if (code === 'NotImplemented') return 'unversioned';
        return fail('GetBucketVersioning', bucket)(error);
      }
    },

    async listFirstPage(bucket, { versions }) {
      if (versions) {
        const out = await s3
          .send(new s3Sdk.ListObjectVersionsCommand({ Bucket: bucket, MaxKeys: pageSize }))
          .catch(fail('ListBucketVersions', bucket));
        return [...(out.Versions ?? []), ...(out.DeleteMarkers ?? [])]
          .slice(0, pageSize)
          .map((v) => ({ key: v.Key ?? '', ...(v.VersionId ? { versionId: v.VersionId } : {}) }));
      }
      // Only ever the first page, so the original ListObjects (no continuation token) is enough; it
      // also works with S3 emulators whose V2 tokens use ciphers OpenSSL 3 dropped (s3rver).
      const out = await s3
        .send(new s3Sdk.ListObjectsCommand({ Bucket: bucket, MaxKeys: pageSize }))
        .catch(fail('ListBucket', bucket));
      return (out.Contents ?? []).map((o) => ({ key: o.Key ?? '' }));
    },

    async deleteObjects(bucket, objects) {
      if (objects.length === 0) return [];
      if (objects.length > 1000) throw new Error('deleteObjects takes at most 1000 objects');
      const out = await s3
        .send(
          new s3Sdk.DeleteObjectsCommand({
            Bucket: bucket,
            Delete: {
              Quiet: true,
              Objects: objects.map((o) => ({
                Key: o.key,
                ...(o.versionId ? { VersionId: o.versionId } : {}),
              })),
            },
          }),
        )
        .catch(fail('DeleteObject', bucket));
      return (out.Errors ?? []).map((e) => ({
        key: e.Key ?? '',
        code: e.Code ?? 'Error',
        message: e.Message ?? '',
      }));
    },
  };
}

export interface EmptyResult {
  /** Objects (or versions) deleted. */
  deleted: number;
  /** The bucket did not exist (nothing to do). */
  missing: boolean;
}

/**
 * Deletes every object (and every version and delete marker when versioning was ever on) of a
 * bucket: delete the first page, list again, until a listing comes back empty. S3 listings are
 * strongly consistent, so a page that comes back unchanged means the deletes do not take effect.
 */
export async function emptyBucket(
  s3: IS3,
  bucket: string,
  options: { onProgress?: (deleted: number) => void; maxRounds?: number; signal?: AbortSignal } = {},
): Promise<EmptyResult> {
  const versioning = await s3.bucketVersioning(bucket);
  if (versioning === 'missing') return { deleted: 0, missing: true };
  const versions = versioning !== 'unversioned';
  const maxRounds = options.maxRounds ?? 100_000;
  let deleted = 0;
  let previous = '';
  for (let round = 0; round < maxRounds; round++) {
    if (options.signal?.aborted) throw new SkyfarmError('CANCELED', `Stopped emptying bucket ${bucket}`);
    const page = await s3.listFirstPage(bucket, { versions });
    if (page.length === 0) return { deleted, missing: false };
    const signature = JSON.stringify(page);
    if (signature === previous) {
      throw new SkyfarmError(
        'AWS_ERROR',
        `Objects in bucket ${bucket} are not going away (e.g. ${page[0]?.key}); is something re-creating them?`,
      );
    }
    previous = signature;
    const failures = await s3.deleteObjects(bucket, page);
    if (failures.length) {
      const first = failures[0] as DeleteFailure;
      throw new SkyfarmError(
        first.code === 'AccessDenied' ? 'AWS_ACCESS_DENIED' : 'AWS_ERROR',
        `Could not delete ${failures.length} object(s) from bucket ${bucket}, e.g. ${first.key}: ${first.code} ${first.message}`.trim(),
      );
    }
    deleted += page.length;
    options.onProgress?.(deleted);
  }
  throw new SkyfarmError(
    'AWS_ERROR',
    `Bucket ${bucket} still has objects after ${maxRounds} rounds of deletes.`,
  );
}
