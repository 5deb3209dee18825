// A fake Amazon EC2 endpoint speaking the EC2 Query protocol as the real @aws-sdk/client-ec2 does
// (POST /, form-encoded `Action=…&Version=2016-11-15&…`, XML answers in the 2016-11-15 namespace):
// DescribeSpotPriceHistory and DescribeInstances. Behaviour: see SPEC.md beside this file.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';

export interface FakeSpotPrice {
  instanceType: string;
  availabilityZone: string;
  /** When this price took effect (epoch ms). */
  since: number;
  usdPerHour: number;
}

export interface FakeInstance {
  instanceId: string;
  instanceType: string;
  availabilityZone: string;
  /** Spot instances say so (`instanceLifecycle`); on-demand ones leave it out, as EC2 does. */
  spot: boolean;
}

export interface FakeEc2 {
  endpoint: string;
  calls: Array<{ action: string; params: Record<string, string>; at: number }>;
  /** Calls of these actions (true: all) answer 403 UnauthorizedOperation while set. */
  deny(denied: boolean | string[]): void;
  close(): Promise<void>;
}

const NS = 'http://ec2.amazonaws.com/doc/2016-11-15/';

class Ec2Error extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

function xmlEscape(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** `Name.1=a&Name.2=b` → [a, b] (the query protocol's flattened lists). */
function list(params: Record<string, string>, name: string): string[] {
  const out: Array<[number, string]> = [];
  for (const [key, value] of Object.entries(params)) {
    const match = new RegExp(`^${name}\\.(\\d+)$`).exec(key);
    if (match) out.push([Number(match[1]), value]);
  }
  return out.sort((a, b) => a[0] - b[0]).map(([, value]) => value);
}

function time(value: string | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  const at = Date.parse(value);
  if (Number.isNaN(at))
    throw new Ec2Error(400, 'InvalidParameterValue', `Invalid value '${value}' for ${name}`);
  return at;
}

function reply(response: ServerResponse, status: number, xml: string): void {
  const body = `<?xml version="1.0" encoding="UTF-8"?>\n${xml}`;
  response.writeHead(status, {
    'content-type': 'text/xml;charset=UTF-8',
    'content-length': Buffer.byteLength(body),
  });
  response.end(body);
}

async function readBody(request: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

export async function startFakeEc2(options: {
  spotPrices: FakeSpotPrice[];
  instances?: FakeInstance[];
  /** Items per page at most (below MaxResults), so a test sees NextToken followed. */
  pageLimit?: number;
}): Promise<FakeEc2> {
  const calls: FakeEc2['calls'] = [];
  let denied: boolean | string[] = false;

  const spotPriceHistory = (params: Record<string, string>, requestId: string): string => {
    const types = list(params, 'InstanceType');
    const products = list(params, 'ProductDescription');
    const zone = params['AvailabilityZone'];
    const end = time(params['EndTime'], 'EndTime') ?? Date.now();
    const start = time(params['StartTime'], 'StartTime') ?? end;
    if (start > end) throw new Ec2Error(400, 'InvalidParameterValue', 'StartTime must be before EndTime');
    const max = params['MaxResults'] === undefined ? 1000 : Number(params['MaxResults']);
    if (!Number.isInteger(max) || max < 1 || max > 10_000)
      throw new Ec2Error(
        400,
        'InvalidParameterValue',
        `Invalid value '${params['MaxResults']}' for MaxResults`,
      );
    if (products.some((p) => !['Linux/UNIX', 'Linux/UNIX (Amazon VPC)', 'Windows'].includes(p)))
      throw new Ec2Error(400, 'InvalidParameterValue', 'Invalid product description');
    // The prices in effect during [start, end]: each one that began inside it, and the one that was
    // in effect at `start` (it began before).
    const matching = options.spotPrices.filter(
      (p) => (types.length === 0 || types.includes(p.instanceType)) && (!zone || p.availabilityZone === zone),
    );
    const picked = matching.filter((p) => {
      if (p.since > end) return false;
      if (p.since >= start) return true;
      return !matching.some(
        (q) =>
          q.instanceType === p.instanceType &&
          q.availabilityZone === p.availabilityZone &&
          q.since > p.since &&
          q.since <= start,
      );
    });
    // Newest first, as EC2 lists them.
    picked.sort((a, b) => b.since - a.since);
    const from = params['NextToken'] ? Number(params['NextToken']) : 0;
    if (!Number.isInteger(from) || from < 0 || from > picked.length)
      throw new Ec2Error(400, 'InvalidNextToken', 'The token is invalid');
    const size = Math.min(max, options.pageLimit ?? max);
    const page = picked.slice(from, from + size);
    const next = from + size < picked.length ? String(from + size) : '';
    const product = products[0] ?? 'Linux/UNIX';
    const items = page
      .map(
        (p) =>
          `<item><availabilityZone>${xmlEscape(p.availabilityZone)}</availabilityZone>` +
          `<instanceType>${xmlEscape(p.instanceType)}</instanceType>` +
          `<productDescription>${xmlEscape(product)}</productDescription>` +
          `<spotPrice>${p.usdPerHour.toFixed(6)}</spotPrice>` +
          `<timestamp>${new Date(p.since).toISOString()}</timestamp></item>`,
      )
      .join('');
    return (
      `<DescribeSpotPriceHistoryResponse xmlns="${NS}"><requestId>${requestId}</requestId>` +
      `<spotPriceHistorySet>${items}</spotPriceHistorySet><nextToken>${next}</nextToken>` +
      `</DescribeSpotPriceHistoryResponse>`
    );
  };

  const describeInstances = (params: Record<string, string>, requestId: string): string => {
    const ids = list(params, 'InstanceId');
    const all = options.instances ?? [];
    const missing = ids.filter((id) => !all.some((i) => i.instanceId === id));
    if (missing.length > 0)
      throw new Ec2Error(
        400,
        'InvalidInstanceID.NotFound',
        `The instance ID${missing.length > 1 ? 's' : ''} '${missing.join(', ')}' do${missing.length > 1 ? '' : 'es'} not exist`,
      );
    const found = ids.length ? all.filter((i) => ids.includes(i.instanceId)) : all;
    const items = found
      .map(
        (i) =>
          `<item><reservationId>r-${i.instanceId.slice(2)}</reservationId><ownerId>123456789012</ownerId>` +
          `<groupSet/><instancesSet><item><instanceId>${xmlEscape(i.instanceId)}</instanceId>` +
          `<imageId>ami-0abcdef1234567890</imageId><instanceState><code>16</code><name>running</name></instanceState>` +
          `<instanceType>${xmlEscape(i.instanceType)}</instanceType>` +
          `<placement><availabilityZone>${xmlEscape(i.availabilityZone)}</availabilityZone>` +
          `<groupName/><tenancy>default</tenancy></placement>` +
          (i.spot
            ? `<instanceLifecycle>spot</instanceLifecycle><spotInstanceRequestId>sir-${i.instanceId.slice(2, 10)}</spotInstanceRequestId>`
            : '') +
          `</item></instancesSet></item>`,
      )
      .join('');
    return (
      `<DescribeInstancesResponse xmlns="${NS}"><requestId>${requestId}</requestId>` +
      `<reservationSet>${items}</reservationSet></DescribeInstancesResponse>`
    );
  };

  const actions: Record<string, (params: Record<string, string>, requestId: string) => string> = {
    DescribeSpotPriceHistory: spotPriceHistory,
    DescribeInstances: describeInstances,
  };

  const server = createServer((request, response) => {
    void (async () => {
      const requestId = randomUUID();
      try {
        const body = await readBody(request);
        const params = Object.fromEntries(new URLSearchParams(body));
        const action = params['Action'] ?? '';
        if (request.method !== 'POST' || params['Version'] !== '2016-11-15')
          throw new Ec2Error(400, 'InvalidAction', `not an EC2 2016-11-15 request`);
        if (!String(request.headers['authorization'] ?? '').startsWith('AWS4-HMAC-SHA256'))
          throw new Ec2Error(
            401,
            'AuthFailure',
            'AWS was not able to validate the provided access credentials',
          );
        const handler = actions[action];
        if (!handler)
          throw new Ec2Error(400, 'InvalidAction', `The action ${action} is not valid for this web service.`);
        calls.push({ action, params, at: Date.now() });
        if (denied === true || (Array.isArray(denied) && denied.includes(action)))
          throw new Ec2Error(
            403,
            'UnauthorizedOperation',
            'You are not authorized to perform this operation.',
          );
        reply(response, 200, handler(params, requestId));
      } catch (error) {
        const e = error instanceof Ec2Error ? error : new Ec2Error(500, 'InternalError', String(error));
        reply(
          response,
          e.status,
          `<Response><Errors><Error><Code>${e.code}</Code><Message>${xmlEscape(e.message)}</Message></Error></Errors>` +
            `<RequestID>${requestId}</RequestID></Response>`,
        );
      }
    })();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    calls,
    deny: (value) => void (denied = value),
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
