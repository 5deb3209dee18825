// A job's S3/EFS storage and requests, as a line of its own beside the compute spend: the EFS working
// copy (the project's bytes) for as long as the job's stages ran, the S3 requests it made, and what its
// new bytes in S3 cost per month while they are kept. Priced with the Price List's S3 Standard, EFS
// Standard and S3 request prices of the farm's region.
import type { StorageCost } from '../../../protocol/generated/protocol.js';
import type { StoragePrices } from '../aws/storage-prices.js';
import type { UploadStats } from '../batch/aws-store.js';
import { formatUsd } from './format.js';

/** AWS bills storage in GB of 2^30 bytes, and GB-months of byte-hours over the month's hours. */
export const GIB = 1024 ** 3;
/** Hours of an average month (8,760 / 12): a GB-month over a part of one. */
export const HOURS_PER_MONTH = 730;

export interface JobObjects {
  /** Objects under jobs/<jobId>/ (manifest, job.json, outputs, result…): each written at least once. */
  count: number;
  bytes: number;
}

export function storageCost(
  upload: UploadStats,
  objects: JobObjects,
  /** When the job's first stage started and its last ended (or now): the EFS copy's lifetime. */
  span: { start: number; end: number } | undefined,
  prices: StoragePrices,
): StorageCost {
  const efsHours = span ? Math.max(0, span.end - span.start) / 3_600_000 : 0;
  const efsUsd = (upload.bytesTotal / GIB) * prices.efsStandardGbMonth * (efsHours / HOURS_PER_MONTH);
  const putRequests = upload.objectsStored + objects.count;
  const getRequests = upload.files;
  const requestsUsd = putRequests * prices.s3PutPerRequest + getRequests * prices.s3GetPerRequest;
  const s3Bytes = upload.bytesUploaded + objects.bytes;
  const s3UsdPerMonth = (s3Bytes / GIB) * prices.s3StandardGbMonth;
  const usd = efsUsd + requestsUsd;
  const gb = (bytes: number) => `${(bytes / GIB).toFixed(2)} GB`;
  return {
    known: true,
    usd,
    s3UsdPerMonth,
    efsBytes: upload.bytesTotal,
    efsHours,
    s3Bytes,
    putRequests,
    getRequests,
    text:
      `≈ ${formatUsd(usd)} (EFS ${gb(upload.bytesTotal)} for ${efsHours.toFixed(2)} h; ` +
      `${putRequests} PUT, up to ${getRequests} GET) · S3 ≈ ${formatUsd(s3UsdPerMonth)}/month while kept ` +
      `(${gb(s3Bytes)} new)`,
  };
}

/** The job's objects in the bucket (jobs/<jobId>/): how many and their bytes. */
export async function jobObjects(
  bucket: { list(prefix: string): Promise<Array<{ size: number }>> },
  jobId: string,
): Promise<JobObjects> {
  const listed = await bucket.list(`jobs/${jobId}/`);
  return { count: listed.length, bytes: listed.reduce((sum, o) => sum + o.size, 0) };
}
