// S3 and EFS products as the Price List holds them (ServiceCode AmazonS3 / AmazonEFS): storage per
// GB-month (S3 Standard in tiers by size), S3 requests per request (Tier1: PUT/COPY/POST/LIST, Tier2:
// GET and the rest). Neighbours that share attributes with the ones a reader wants are included too
// (S3 Intelligent-Tiering overhead shares Standard's usagetype; EFS Infrequent Access and One Zone),
// so a reader's selection matters. Shapes follow the Price List's JSON (see SPEC.md).

export interface FakeStoragePrices {
  regionCode: string;
  /** S3 Standard USD per GB-month, first tier (0–50 TB); the next tiers are cheaper. */
  s3StandardGbMonth: number;
  /** USD per request. */
  s3Tier1PerRequest: number;
  s3Tier2PerRequest: number;
  /** EFS Standard (regional) USD per GB-month. */
  efsStandardGbMonth: number;
}

export interface StorageEntry {
  serviceCode: 'AmazonS3' | 'AmazonEFS';
  attributes: Record<string, string>;
  text: string;
}

const ON_DEMAND_TERM = 'JRTCKXETXF';
const PREFIX: Record<string, string> = { 'us-east-1': '', 'us-west-2': 'USW2-', 'eu-west-1': 'EU-' };

function sku(seed: string): string {
  let h = 7;
  for (const c of seed) h = (h * 33 + c.charCodeAt(0)) >>> 0;
  return `S${h.toString(36).toUpperCase().padStart(8, 'Z')}${seed.length}`.slice(0, 16);
}

function product(
  serviceCode: StorageEntry['serviceCode'],
  productFamily: string,
  attributes: Record<string, string>,
  tiers: Array<{ usd: number; unit: string; begin: string; end: string; description: string }>,
): StorageEntry {
  const code = sku(`${serviceCode}/${JSON.stringify(attributes)}`);
  const dimensions = Object.fromEntries(
    tiers.map((tier, i) => {
      const rate = `${code}.${ON_DEMAND_TERM}.${['PGHJ3S3EYE', 'D42MF2PVJS', 'WVV8R9FH29'][i] ?? 'X'}`;
      return [
        rate,
        {
          unit: tier.unit,
          endRange: tier.end,
          description: tier.description,
          appliesTo: [],
          rateCode: rate,
          beginRange: tier.begin,
          pricePerUnit: { USD: tier.usd.toFixed(10) },
        },
      ];
    }),
  );
  const document = {
    product: { productFamily, attributes, sku: code },
    serviceCode,
    terms: {
      OnDemand: {
        [`${code}.${ON_DEMAND_TERM}`]: {
          priceDimensions: dimensions,
          sku: code,
          effectiveDate: '2026-11-01T00:00:00Z',
          offerTermCode: ON_DEMAND_TERM,
          termAttributes: {},
        },
      },
    },
    version: '20261120181241',
    publicationDate: '2026-11-20T18:12:41Z',
  };
  return { serviceCode, attributes, text: JSON.stringify(document) };
}

export function storageProducts(prices: FakeStoragePrices): StorageEntry[] {
  const region = prices.regionCode;
  const p = PREFIX[region] ?? `${region.toUpperCase()}-`;
  const common = (servicecode: string, servicename: string) => ({
    servicecode,
    servicename,
    location: region === 'us-east-1' ? 'US East (N. Virginia)' : region,
    locationType: 'AWS Region',
    regionCode: region,
    operation: '',
  });
  const s3 = common('AmazonS3', 'Amazon Simple Storage Service');
  const efs = common('AmazonEFS', 'Amazon Elastic File System');
  const gb = prices.s3StandardGbMonth;
  return [
    product(
      'AmazonS3',
      'Storage',
      {
        ...s3,
        availability: '99.99%',
        durability: '99.999999999%',
        storageClass: 'General Purpose',
        volumeType: 'Standard',
        usagetype: `${p}TimedStorage-ByteHrs`,
      },
      [
        {
          usd: gb,
          unit: 'GB-Mo',
          begin: '0',
          end: '51200',
          description: `$${gb} per GB - first 50 TB / month of storage used`,
        },
        { usd: gb * 0.956, unit: 'GB-Mo', begin: '51200', end: '512000', description: 'next 450 TB / month' },
        { usd: gb * 0.913, unit: 'GB-Mo', begin: '512000', end: 'Inf', description: 'over 500 TB / month' },
      ],
    ),
    // Shares Standard's usagetype: only volumeType tells them apart.
    product(
      'AmazonS3',
      'Storage',
      {
        ...s3,
        storageClass: 'Intelligent-Tiering',
        volumeType: 'INTAAS3ObjectOverhead',
        usagetype: `${p}TimedStorage-ByteHrs`,
      },
      [{ usd: gb * 3, unit: 'GB-Mo', begin: '0', end: 'Inf', description: 'overhead' }],
    ),
    product(
      'AmazonS3',
      'Storage',
      {
        ...s3,
        storageClass: 'Infrequent Access',
        volumeType: 'Standard - Infrequent Access',
        usagetype: `${p}TimedStorage-SIA-ByteHrs`,
      },
      [{ usd: gb * 0.54, unit: 'GB-Mo', begin: '0', end: 'Inf', description: 'Standard-IA' }],
    ),
    product(
      'AmazonS3',
      'API Request',
      {
        ...s3,
        group: 'S3-API-Tier1',
        groupDescription: 'PUT/COPY/POST or LIST requests',
        usagetype: `${p}Requests-Tier1`,
      },
      [
        {
          usd: prices.s3Tier1PerRequest,
          unit: 'Requests',
          begin: '0',
          end: 'Inf',
          description: 'PUT, COPY, POST, or LIST requests',
        },
      ],
    ),
    product(
      'AmazonS3',
      'API Request',
      {
        ...s3,
        group: 'S3-API-Tier2',
        groupDescription: 'GET and all other requests',
        usagetype: `${p}Requests-Tier2`,
      },
      [
        {
          usd: prices.s3Tier2PerRequest,
          unit: 'Requests',
          begin: '0',
          end: 'Inf',
          description: 'GET and all other requests',
        },
      ],
    ),
    product(
      'AmazonS3',
      'API Request',
      {
        ...s3,
        group: 'S3-API-SIA-Tier1',
        groupDescription: 'PUT/COPY/POST or LIST requests to Standard-IA',
        usagetype: `${p}Requests-SIA-Tier1`,
      },
      [
        {
          usd: prices.s3Tier1PerRequest * 2,
          unit: 'Requests',
          begin: '0',
          end: 'Inf',
          description: 'Standard-IA PUT',
        },
      ],
    ),
    product(
      'AmazonEFS',
      'Storage',
      { ...efs, storageClass: 'General Purpose', usagetype: `${p || 'USE1-'}TimedStorage-ByteHrs` },
      [
        {
          usd: prices.efsStandardGbMonth,
          unit: 'GB-Mo',
          begin: '0',
          end: 'Inf',
          description: `$${prices.efsStandardGbMonth} per GB-Mo for Standard storage`,
        },
      ],
    ),
    product(
      'AmazonEFS',
      'Storage',
      { ...efs, storageClass: 'Infrequent Access', usagetype: `${p || 'USE1-'}IATimedStorage-ByteHrs` },
      [
        {
          usd: prices.efsStandardGbMonth / 12,
          unit: 'GB-Mo',
          begin: '0',
          end: 'Inf',
          description: 'Infrequent Access storage',
        },
      ],
    ),
    product(
      'AmazonEFS',
      'Storage',
      {
        ...efs,
        storageClass: 'One Zone-General Purpose',
        usagetype: `${p || 'USE1-'}TimedStorage-Z-ByteHrs`,
      },
      [
        {
          usd: prices.efsStandardGbMonth * 0.53,
          unit: 'GB-Mo',
          begin: '0',
          end: 'Inf',
          description: 'One Zone storage',
        },
      ],
    ),
  ];
}
