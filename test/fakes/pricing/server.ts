// A fake AWS Price List Query API (JSON 1.1, `X-Amz-Target: AWSPriceListService.<Operation>`, as the
// real @aws-sdk/client-pricing speaks it): GetProducts over EC2 instance products whose PriceList
// entries are JSON strings shaped like the API reference's. Behaviour: see SPEC.md beside this file.
import { AwsJsonError, startJsonEndpoint } from '../json11.js';
import { storageProducts, type FakeStoragePrices } from './storage-products.js';

export interface FakeInstanceProduct {
  instanceType: string;
  regionCode: string;
  vcpu: number;
  gpu?: number;
  memoryGiB: number;
  /** On-demand Linux price per hour in USD. */
  usdPerHour: number;
}

export interface FakePricing {
  endpoint: string;
  calls: Array<{ operation: string; input: Record<string, unknown>; at: number }>;
  /** Every call answers AccessDeniedException while set (an identity without pricing:GetProducts). */
  deny(denied: boolean): void;
  close(): Promise<void>;
}

const LOCATIONS: Record<string, string> = {
  'us-east-1': 'US East (N. Virginia)',
  'us-west-2': 'US West (Oregon)',
  'eu-central-1': 'EU (Frankfurt)',
  'eu-west-1': 'EU (Ireland)',
};

const PUBLICATION = '2026-11-20T18:12:41Z';
const ON_DEMAND_TERM = 'JRTCKXETXF';
const RATE = '6YS6EN2CT7';
const RESERVED_TERM = '4NA7Y494T4';

interface Entry {
  serviceCode?: string;
  attributes: Record<string, string>;
  text: string;
}

function sku(seed: string): string {
  let h = 0;
  for (const c of seed) h = (h * 31 + c.charCodeAt(0)) >>> 0;
  return `${h.toString(36).toUpperCase().padStart(7, 'X')}Q${seed.length}`.slice(0, 16);
}

/** One product as the Price List serialises it (a JSON document in a string). */
function entry(product: FakeInstanceProduct, os: string, tenancy: string, factor: number): Entry {
  const location = LOCATIONS[product.regionCode] ?? product.regionCode;
  const code = sku(`${product.instanceType}/${product.regionCode}/${os}/${tenancy}`);
  const attributes: Record<string, string> = {
    servicecode: 'AmazonEC2',
    servicename: 'Amazon Elastic Compute Cloud',
    location,
    locationType: 'AWS Region',
    regionCode: product.regionCode,
    instanceType: product.instanceType,
    instanceFamily: product.gpu ? 'GPU instance' : 'Compute optimized',
    currentGeneration: 'Yes',
    vcpu: String(product.vcpu),
    memory: `${product.memoryGiB} GiB`,
    ...(product.gpu ? { gpu: String(product.gpu) } : {}),
    operatingSystem: os,
    tenancy,
    preInstalledSw: 'NA',
    licenseModel: 'No License required',
    capacitystatus: 'Used',
    marketoption: 'OnDemand',
    operation: os === 'Linux' ? 'RunInstances' : 'RunInstances:0002',
    usagetype: `${tenancy === 'Dedicated' ? 'DedicatedUsage' : 'BoxUsage'}:${product.instanceType}`,
  };
  const price = (product.usdPerHour * factor).toFixed(10);
  const document = {
    product: { productFamily: 'Compute Instance', attributes, sku: code },
    serviceCode: 'AmazonEC2',
    terms: {
      OnDemand: {
        [`${code}.${ON_DEMAND_TERM}`]: {
          priceDimensions: {
            [`${code}.${ON_DEMAND_TERM}.${RATE}`]: {
              unit: 'Hrs',
              endRange: 'Inf',
              description: `$${price} per On Demand ${os} ${product.instanceType} Instance Hour`,
              appliesTo: [],
              rateCode: `${code}.${ON_DEMAND_TERM}.${RATE}`,
              beginRange: '0',
              pricePerUnit: { USD: price },
            },
          },
          sku: code,
          effectiveDate: '2026-11-01T00:00:00Z',
          offerTermCode: ON_DEMAND_TERM,
          termAttributes: {},
        },
      },
      // Real products also carry reserved terms: a reader must pick the on-demand one.
      Reserved: {
        [`${code}.${RESERVED_TERM}`]: {
          priceDimensions: {
            [`${code}.${RESERVED_TERM}.${RATE}`]: {
              unit: 'Hrs',
              endRange: 'Inf',
              description: `${os} ${product.instanceType} reserved instance applied`,
              appliesTo: [],
              rateCode: `${code}.${RESERVED_TERM}.${RATE}`,
              beginRange: '0',
              pricePerUnit: { USD: (product.usdPerHour * factor * 0.6).toFixed(10) },
            },
          },
          sku: code,
          effectiveDate: '2026-11-01T00:00:00Z',
          offerTermCode: RESERVED_TERM,
          termAttributes: {
            LeaseContractLength: '1yr',
            OfferingClass: 'standard',
            PurchaseOption: 'No Upfront',
          },
        },
      },
    },
    version: '20261120181241',
    publicationDate: PUBLICATION,
  };
  return { attributes, text: JSON.stringify(document) };
}

const FILTER_TYPES = new Set(['TERM_MATCH', 'EQUALS', 'CONTAINS', 'ANY_OF', 'NONE_OF']);

function matches(attributes: Record<string, string>, filter: Record<string, unknown>): boolean {
  const type = String(filter['Type'] ?? '');
  const field = String(filter['Field'] ?? '');
  const value = String(filter['Value'] ?? '');
  // Field names are matched without regard to case, as the service does.
  const key = Object.keys(attributes).find((k) => k.toLowerCase() === field.toLowerCase());
  const actual = key === undefined ? undefined : attributes[key];
  const values = value.split(',').map((v) => v.trim());
  switch (type) {
    case 'TERM_MATCH':
    case 'EQUALS':
      return actual !== undefined && actual.toLowerCase() === value.toLowerCase();
    case 'CONTAINS':
      return actual !== undefined && actual.toLowerCase().includes(value.toLowerCase());
    case 'ANY_OF':
      return actual !== undefined && values.some((v) => v.toLowerCase() === actual.toLowerCase());
    default:
      return actual === undefined || !values.some((v) => v.toLowerCase() === actual.toLowerCase());
  }
}

export async function startFakePricing(options: {
  products: FakeInstanceProduct[];
  /** S3 and EFS prices of a region (ServiceCode AmazonS3 / AmazonEFS products). */
  storage?: FakeStoragePrices;
  /** Entries per page at most (below MaxResults), so a test sees NextToken followed. */
  pageLimit?: number;
}): Promise<FakePricing> {
  const entries: Entry[] = [];
  for (const product of options.products) {
    entries.push(entry(product, 'Linux', 'Shared', 1));
    entries.push(entry(product, 'Windows', 'Shared', 1.8));
    entries.push(entry(product, 'Linux', 'Dedicated', 1.1));
  }
  if (options.storage) entries.push(...storageProducts(options.storage));
  let denied = false;
  const endpoint = await startJsonEndpoint('AWSPriceListService', {
    GetProducts: (input) => {
      if (denied) {
        throw new AwsJsonError(
          'AccessDeniedException',
          'User: arn:aws:iam::123456789012:user/artist is not authorized to perform: pricing:GetProducts because no identity-based policy allows the pricing:GetProducts action',
        );
      }
      if (typeof input['ServiceCode'] !== 'string' || !input['ServiceCode'])
        throw new AwsJsonError('InvalidParameterException', 'ServiceCode is required');
      const filters = (input['Filters'] ?? []) as Array<Record<string, unknown>>;
      for (const filter of filters) {
        if (!FILTER_TYPES.has(String(filter['Type'])) || !filter['Field'] || filter['Value'] === undefined)
          throw new AwsJsonError('InvalidParameterException', `invalid filter ${JSON.stringify(filter)}`);
      }
      const max = input['MaxResults'] === undefined ? 100 : Number(input['MaxResults']);
      if (!Number.isInteger(max) || max < 1 || max > 100)
        throw new AwsJsonError('InvalidParameterException', 'MaxResults must be between 1 and 100');
      const found = entries.filter(
        (e) =>
          (e.serviceCode ?? 'AmazonEC2') === input['ServiceCode'] &&
          filters.every((f) => matches(e.attributes, f)),
      );
      const start = input['NextToken'] === undefined ? 0 : Number(input['NextToken']);
      if (!Number.isInteger(start) || start < 0 || start > found.length)
        throw new AwsJsonError('InvalidNextTokenException', 'The pagination token is invalid');
      const size = Math.min(max, options.pageLimit ?? max);
      const page = found.slice(start, start + size);
      return {
        FormatVersion: 'aws_v1',
        PriceList: page.map((e) => e.text),
        ...(start + size < found.length ? { NextToken: String(start + size) } : {}),
      };
    },
  });
  return {
    endpoint: endpoint.endpoint,
    calls: endpoint.calls,
    deny: (value) => void (denied = value),
    close: () => endpoint.close(),
  };
}
