// S3 and EFS prices from the AWS Price List (ServiceCode AmazonS3 / AmazonEFS): what a job's storage
// and requests line is priced with. Selected by the attributes the Price List gives its products:
// S3 Standard storage is volumeType "Standard" with the TimedStorage-ByteHrs usage type (Intelligent-
// Tiering's overhead shares that usage type), requests are the groups S3-API-Tier1 (PUT, COPY, POST,
// LIST) and S3-API-Tier2 (GET and the rest), EFS Standard storage is the TimedStorage-ByteHrs usage type
// (Infrequent Access, One Zone and Archive have their own). The first tier's USD price is taken.
import type { Filter } from '@aws-sdk/client-pricing';

export interface StoragePrices {
  region: string;
  /** USD per GB-month (first tier). */
  s3StandardGbMonth: number;
  /** USD per request. */
  s3PutPerRequest: number;
  s3GetPerRequest: number;
  efsStandardGbMonth: number;
}

/** One GetProducts query: a service and its filters, and how to pick the price out of its answer. */
export interface StorageQuery {
  serviceCode: 'AmazonS3' | 'AmazonEFS';
  filters: Filter[];
}

const term = (Field: string, Value: string): Filter => ({ Type: 'TERM_MATCH', Field, Value });

export function storageQueries(
  region: string,
): Record<'s3Storage' | 's3Requests' | 'efsStorage', StorageQuery> {
  return {
    s3Storage: {
      serviceCode: 'AmazonS3',
      filters: [
        term('regionCode', region),
        term('volumeType', 'Standard'),
        term('storageClass', 'General Purpose'),
      ],
    },
    s3Requests: {
      serviceCode: 'AmazonS3',
      filters: [
        term('regionCode', region),
        { Type: 'ANY_OF', Field: 'group', Value: 'S3-API-Tier1,S3-API-Tier2' },
      ],
    },
    efsStorage: {
      serviceCode: 'AmazonEFS',
      filters: [
        term('regionCode', region),
        { Type: 'CONTAINS', Field: 'usagetype', Value: 'TimedStorage-ByteHrs' },
      ],
    },
  };
}

interface PriceDocument {
  product?: { attributes?: Record<string, string> };
  terms?: {
    OnDemand?: Record<
      string,
      {
        priceDimensions?: Record<
          string,
          { unit?: string; beginRange?: string; pricePerUnit?: Record<string, string> }
        >;
      }
    >;
  };
}

export interface PricedProduct {
  attributes: Record<string, string>;
  /** The on-demand USD price of the first tier (beginRange 0) in `unit`. */
  usd: number;
  unit: string;
}

/** A PriceList entry → its attributes and first-tier on-demand USD price; undefined without one. */
export function parseStorageEntry(text: string): PricedProduct | undefined {
  let doc: PriceDocument;
  try {
    doc = JSON.parse(text) as PriceDocument;
  } catch {
    return undefined;
  }
  for (const offer of Object.values(doc.terms?.OnDemand ?? {})) {
    for (const dimension of Object.values(offer.priceDimensions ?? {})) {
      const usd = Number(dimension.pricePerUnit?.['USD']);
      if ((dimension.beginRange ?? '0') === '0' && dimension.unit && Number.isFinite(usd) && usd >= 0)
        return { attributes: doc.product?.attributes ?? {}, usd, unit: dimension.unit };
    }
  }
  return undefined;
}

/** Standard storage's usage type, with or without a region prefix (USE2-TimedStorage-ByteHrs). */
const STANDARD_STORAGE = /^(?:[A-Z0-9]+-)?TimedStorage-ByteHrs$/;

export function pickS3Storage(products: PricedProduct[]): number | undefined {
  return products.find(
    (p) =>
      p.unit === 'GB-Mo' &&
      p.attributes['volumeType'] === 'Standard' &&
      STANDARD_STORAGE.test(p.attributes['usagetype'] ?? ''),
  )?.usd;
}

export function pickS3Request(
  products: PricedProduct[],
  group: 'S3-API-Tier1' | 'S3-API-Tier2',
): number | undefined {
  return products.find((p) => p.unit === 'Requests' && p.attributes['group'] === group)?.usd;
}

export function pickEfsStorage(products: PricedProduct[]): number | undefined {
  return products.find((p) => p.unit === 'GB-Mo' && STANDARD_STORAGE.test(p.attributes['usagetype'] ?? ''))
    ?.usd;
}
