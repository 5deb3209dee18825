// On-demand EC2 prices from the AWS Price List Query API (GetProducts), behind a narrow interface over
// the real SDK v3 client (@aws-sdk/client-pricing).
import type { Filter, PricingClient } from '@aws-sdk/client-pricing';
import type * as PricingSdk from '@aws-sdk/client-pricing';
import type { ClientSettings } from '../batch/bucket.js';
import { lazySdk } from './lazy-sdk.js';
import {
  parseStorageEntry,
  pickEfsStorage,
  pickS3Request,
  pickS3Storage,
  storageQueries,
  type PricedProduct,
  type StoragePrices,
} from './storage-prices.js';

const pricingSdk = lazySdk<typeof PricingSdk>('@aws-sdk/client-pricing');

export interface InstanceOffer {
  instanceType: string;
  region: string;
  vcpu: number;
  /** GPUs of the instance (0 without). */
  gpu: number;
  /** Linux, shared tenancy, on-demand, USD per hour. */
  usdPerHour: number;
}

export interface IPricing {
  /** The on-demand offer of `instanceType` in `region`; undefined when the Price List has none. */
  onDemand(region: string, instanceType: string): Promise<InstanceOffer | undefined>;
  /** The on-demand offers of every size of a family (`c6i` → c6i.large, c6i.xlarge, …) in `region`. */
  familyOffers(region: string, family: string): Promise<InstanceOffer[]>;
  /** S3 Standard and EFS Standard storage and S3 request prices in `region`; a missing one is undefined. */
  storagePrices(region: string): Promise<Partial<StoragePrices> & { region: string }>;
}

/** The filters that select one Linux, shared-tenancy, on-demand product of an instance type. */
export function onDemandFilters(region: string, instanceType: string): Filter[] {
  return linuxShared(region, [{ Type: 'TERM_MATCH', Field: 'instanceType', Value: instanceType }]);
}

/**
 * The filters that select the Linux, shared-tenancy, on-demand products of a family's sizes: the
 * instance type contains "<family>." (CONTAINS, a documented filter type), checked exactly after.
 */
export function familyFilters(region: string, family: string): Filter[] {
  return linuxShared(region, [{ Type: 'CONTAINS', Field: 'instanceType', Value: `${family}.` }]);
}

function linuxShared(region: string, type: Filter[]): Filter[] {
  return [
    { Type: 'TERM_MATCH', Field: 'regionCode', Value: region },
    ...type,
    ...[
      ['operatingSystem', 'Linux'],
      ['tenancy', 'Shared'],
      ['preInstalledSw', 'NA'],
      ['capacitystatus', 'Used'],
    ].map(([Field, Value]) => ({ Type: 'TERM_MATCH' as const, Field: Field!, Value: Value! })),
  ];
}

interface PriceListDocument {
  product?: { attributes?: Record<string, string> };
  terms?: {
    OnDemand?: Record<
      string,
      { priceDimensions?: Record<string, { unit?: string; pricePerUnit?: Record<string, string> }> }
    >;
  };
}

/**
 * One PriceList entry (a JSON document in a string, as GetProducts returns it) → the offer, from its
 * attributes and its OnDemand term's hourly USD dimension. Undefined for anything else.
 */
export function parsePriceListEntry(text: string): InstanceOffer | undefined {
  let doc: PriceListDocument;
  try {
    doc = JSON.parse(text) as PriceListDocument;
  } catch {
    return undefined;
  }
  const attributes = doc.product?.attributes ?? {};
  const instanceType = attributes['instanceType'];
  const vcpu = Number(attributes['vcpu']);
  if (!instanceType || !(vcpu > 0)) return undefined;
  for (const term of Object.values(doc.terms?.OnDemand ?? {})) {
    for (const dimension of Object.values(term.priceDimensions ?? {})) {
      const usd = Number(dimension.pricePerUnit?.['USD']);
      if (dimension.unit === 'Hrs' && Number.isFinite(usd) && usd > 0) {
        return {
          instanceType,
          region: attributes['regionCode'] ?? '',
          vcpu,
          gpu: Number(attributes['gpu'] ?? 0) || 0,
          usdPerHour: usd,
        };
      }
    }
  }
  return undefined;
}

/** The Price List Query API answers only in these regions; the prices of every region are there. */
export function pricingRegion(region: string): string {
  if (region.startsWith('eu-') || region.startsWith('me-') || region.startsWith('af-')) return 'eu-central-1';
  if (region.startsWith('ap-')) return 'ap-south-1';
  return 'us-east-1';
}

const MAX_PAGES = 10;

export function createPricing(settings: ClientSettings): IPricing & { destroy(): void } {
  let client: PricingClient | undefined;
  /** Every offer the filters select (pages followed up to MAX_PAGES); stops early once `enough` says so. */
  const offers = async (
    region: string,
    filters: Filter[],
    enough: (offer: InstanceOffer) => boolean,
  ): Promise<InstanceOffer[]> => {
    const found: InstanceOffer[] = [];
    await entries(region, 'AmazonEC2', filters, (text) => {
      const offer = parsePriceListEntry(text);
      if (!offer) return false;
      found.push(offer);
      return enough(offer);
    });
    return found;
  };
  /** Every PriceList entry the query selects (pages followed up to MAX_PAGES) until `take` says enough. */
  const entries = async (
    region: string,
    serviceCode: string,
    filters: Filter[],
    take: (text: string) => boolean,
  ): Promise<void> => {
    client ??= new pricingSdk.PricingClient({
      region: pricingRegion(region),
      ...(settings.credentials ? { credentials: settings.credentials } : {}),
      ...(settings.endpoint ? { endpoint: settings.endpoint } : {}),
    });
    let token: string | undefined;
    for (let page = 0; page < MAX_PAGES; page++) {
      const out = await client.send(
        new pricingSdk.GetProductsCommand({
          ServiceCode: serviceCode,
          FormatVersion: 'aws_v1',
          Filters: filters,
          MaxResults: 100,
          ...(token ? { NextToken: token } : {}),
        }),
      );
      for (const text of out.PriceList ?? []) if (take(text)) return;
      token = out.NextToken;
      if (!token) break;
    }
  };
  const priced = async (region: string, query: { serviceCode: string; filters: Filter[] }) => {
    const products: PricedProduct[] = [];
    await entries(region, query.serviceCode, query.filters, (text) => {
      const product = parseStorageEntry(text);
      if (product) products.push(product);
      return false;
    });
    return products;
  };
  return {
    async onDemand(region, instanceType) {
      const found = await offers(
        region,
        onDemandFilters(region, instanceType),
        (o) => o.instanceType === instanceType,
      );
      return found.find((o) => o.instanceType === instanceType);
    },
    async familyOffers(region, family) {
      const found = await offers(region, familyFilters(region, family), () => false);
      const sizes = new Map<string, InstanceOffer>();
      for (const offer of found)
        if (offer.instanceType.startsWith(`${family}.`) && !sizes.has(offer.instanceType))
          sizes.set(offer.instanceType, offer);
      return [...sizes.values()];
    },
    async storagePrices(region) {
      const queries = storageQueries(region);
      const s3Storage = await priced(region, queries.s3Storage);
      const s3Requests = await priced(region, queries.s3Requests);
      const efsStorage = await priced(region, queries.efsStorage);
      const found = {
        s3StandardGbMonth: pickS3Storage(s3Storage),
        s3PutPerRequest: pickS3Request(s3Requests, 'S3-API-Tier1'),
        s3GetPerRequest: pickS3Request(s3Requests, 'S3-API-Tier2'),
        efsStandardGbMonth: pickEfsStorage(efsStorage),
      };
      return {
        region,
        ...Object.fromEntries(Object.entries(found).filter(([, v]) => v !== undefined)),
      };
    },
    destroy: () => client?.destroy(),
  };
}
