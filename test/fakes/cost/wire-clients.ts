// The cost interfaces (IPricing, IEc2, IContainerInstances) over plain HTTP to the fakes, with the wire
// formats of the API references (JSON 1.1; the EC2 Query protocol with XML answers). They stand in
// for the SDK clients while @aws-sdk/client-pricing, client-ec2 and client-ecs are not installed here;
// errors come out as the SDK's do (`name` = the AWS error code, `$metadata.httpStatusCode`).
import { parsePriceListEntry, onDemandFilters, type IPricing } from '../../../daemon/src/aws/pricing.js';
import type { IEc2, SpotPricePoint, Ec2Instance } from '../../../daemon/src/aws/ec2.js';
import { toContainerInstance, type IContainerInstances } from '../../../daemon/src/aws/ecs.js';

// The fakes check only that a SigV4 header is present.
const AUTHORIZATION =
  'AWS4-HMAC-SHA256 Credential=S3RVER/20261207/us-east-1/svc/aws4_request, SignedHeaders=host, Signature=0';

function awsError(code: string, message: string, status: number): Error {
  return Object.assign(new Error(message), { name: code, $metadata: { httpStatusCode: status } });
}

async function json11(endpoint: string, target: string, input: unknown): Promise<Record<string, unknown>> {
  const response = await fetch(endpoint, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-amz-json-1.1',
      'x-amz-target': target,
      authorization: AUTHORIZATION,
    },
    body: JSON.stringify(input),
  });
  const body = (await response.json()) as Record<string, unknown>;
  if (!response.ok) {
    const type = String(body['__type'] ?? 'UnknownError')
      .split('#')
      .pop()!;
    throw awsError(type, String(body['message'] ?? body['Message'] ?? ''), response.status);
  }
  return body;
}

export function wirePricing(endpoint: string): IPricing {
  return {
    async onDemand(region, instanceType) {
      let token: string | undefined;
      for (let page = 0; page < 10; page++) {
        const out = await json11(endpoint, 'AWSPriceListService.GetProducts', {
          ServiceCode: 'AmazonEC2',
          FormatVersion: 'aws_v1',
          Filters: onDemandFilters(region, instanceType),
          MaxResults: 100,
          ...(token ? { NextToken: token } : {}),
        });
        for (const text of (out['PriceList'] as string[]) ?? []) {
          const offer = parsePriceListEntry(text);
          if (offer && offer.instanceType === instanceType) return offer;
        }
        token = out['NextToken'] as string | undefined;
        if (!token) break;
      }
      return undefined;
    },
  };
}

export function wireContainerInstances(endpoint: string): IContainerInstances {
  return {
    async describe(cluster, arns) {
      const out = await json11(endpoint, 'AmazonEC2ContainerServiceV20141113.DescribeContainerInstances', {
        cluster,
        containerInstances: arns,
      });
      return ((out['containerInstances'] as Array<Parameters<typeof toContainerInstance>[0]>) ?? []).flatMap(
        (item) => {
          const found = toContainerInstance(item);
          return found ? [found] : [];
        },
      );
    },
  };
}

function tag(xml: string, name: string): string | undefined {
  return new RegExp(`<${name}>([^<]*)</${name}>`).exec(xml)?.[1];
}

function items(xml: string, set: string): string[] {
  const inner = new RegExp(`<${set}>([\\s\\S]*?)</${set}>`).exec(xml)?.[1] ?? '';
  return inner.split('<item>').slice(1);
}

async function query(endpoint: string, params: Record<string, string>): Promise<string> {
  const response = await fetch(endpoint, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded; charset=utf-8',
      authorization: AUTHORIZATION,
    },
    body: new URLSearchParams({ ...params, Version: '2016-11-15' }).toString(),
  });
  const text = await response.text();
  if (!response.ok)
    throw awsError(tag(text, 'Code') ?? 'UnknownError', tag(text, 'Message') ?? '', response.status);
  return text;
}

export function wireEc2(endpoint: string): IEc2 {
  return {
    async spotPrices(instanceType, availabilityZone, start, end) {
      const points: SpotPricePoint[] = [];
      let token = '';
      for (let page = 0; page < 20; page++) {
        const xml = await query(endpoint, {
          Action: 'DescribeSpotPriceHistory',
          'InstanceType.1': instanceType,
          'ProductDescription.1': 'Linux/UNIX',
          AvailabilityZone: availabilityZone,
          StartTime: new Date(start).toISOString(),
          EndTime: new Date(end).toISOString(),
          MaxResults: '1000',
          ...(token ? { NextToken: token } : {}),
        });
        for (const item of items(xml, 'spotPriceHistorySet')) {
          points.push({
            instanceType: tag(item, 'instanceType') ?? '',
            availabilityZone: tag(item, 'availabilityZone') ?? '',
            usdPerHour: Number(tag(item, 'spotPrice')),
            since: Date.parse(tag(item, 'timestamp') ?? ''),
          });
        }
        token = tag(xml, 'nextToken') ?? '';
        if (!token) break;
      }
      return points.sort((a, b) => a.since - b.since);
    },
    async instances(instanceIds) {
      if (instanceIds.length === 0) return [];
      const params: Record<string, string> = { Action: 'DescribeInstances' };
      instanceIds.forEach((id, i) => (params[`InstanceId.${i + 1}`] = id));
      const xml = await query(endpoint, params);
      const found: Ec2Instance[] = [];
      for (const match of xml.matchAll(/<instancesSet><item>([\s\S]*?)<\/item><\/instancesSet>/g)) {
        const instance = match[1] ?? '';
        found.push({
          instanceId: tag(instance, 'instanceId') ?? '',
          instanceType: tag(instance, 'instanceType') ?? '',
          availabilityZone: tag(instance, 'availabilityZone') ?? '',
          spot: tag(instance, 'instanceLifecycle') === 'spot',
        });
      }
      return found;
    },
  };
}
