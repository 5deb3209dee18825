// An HTTP proxy in front of s3rver that (1) injects faults into a seeded share of the requests and
// (2) keeps the multipart-upload bookkeeping s3rver lacks (ListMultipartUploads, AbortMultipartUpload),
// so "no orphaned multipart uploads" can be checked through the real S3 wire protocol.
// Behaviour spec: ./README.md.
import http from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

export type FaultKind = '5xx' | 'reset' | 'reset-mid-body' | 'drop-response' | 'truncate' | 'slow';

export type S3Op =
  | 'HeadObject'
  | 'GetObject'
  | 'PutObject'
  | 'DeleteObject'
  | 'ListObjects'
  | 'CreateMultipartUpload'
  | 'UploadPart'
  | 'CompleteMultipartUpload'
  | 'AbortMultipartUpload'
  | 'ListMultipartUploads'
  | 'Other';

export interface FaultPlan {
  /** Share of requests that get a fault (0–1). */
  rate: number;
  /** Seed of the deterministic random sequence. */
  seed: number;
  kinds?: FaultKind[];
  /** Delay of a `slow` fault, ms (default 300–1500). */
  slowMs?: [number, number];
  /** Operations never faulted (default: none). */
  spare?: S3Op[];
}

export interface ProxyStats {
  requests: number;
  byOp: Partial<Record<S3Op, number>>;
  faults: Partial<Record<FaultKind, number>>;
  /** Request body bytes forwarded for PutObject and UploadPart. */
  uploadBytes: number;
  /** The first 10,000 requests: operation and key. */
  log: Array<{ op: S3Op; key: string }>;
}

export interface MultipartRecord {
  bucket: string;
  key: string;
  uploadId: string;
  initiated: Date;
  state: 'open' | 'completed' | 'aborted';
}

export interface S3Proxy {
  endpoint: string;
  stats: ProxyStats;
  resetStats(): void;
  setFaults(plan: FaultPlan | null): void;
  /** Extra delay per request (e.g. hold part uploads so a cancel lands mid-flight). */
  setDelay(delay: ((op: S3Op) => number) | null): void;
  /** Every multipart upload seen, with its state. */
  uploads(): MultipartRecord[];
  close(): Promise<void>;
}

/** mulberry32: small, seeded, good enough to spread faults. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function classify(method: string, url: URL): { op: S3Op; bucket: string; key: string } {
  const [, bucket = '', ...rest] = url.pathname.split('/');
  const key = decodeURIComponent(rest.join('/'));
  const q = url.searchParams;
  let op: S3Op = 'Other';
  if (method === 'HEAD' && key) op = 'HeadObject';
  else if (method === 'GET' && !key && q.has('uploads')) op = 'ListMultipartUploads';
  else if (method === 'GET' && !key) op = 'ListObjects';
  else if (method === 'GET') op = 'GetObject';
  else if (method === 'POST' && q.has('uploads')) op = 'CreateMultipartUpload';
  else if (method === 'POST' && q.has('uploadId')) op = 'CompleteMultipartUpload';
  else if (method === 'PUT' && q.has('uploadId')) op = 'UploadPart';
  else if (method === 'PUT' && key) op = 'PutObject';
  else if (method === 'DELETE' && q.has('uploadId')) op = 'AbortMultipartUpload';
  else if (method === 'DELETE' && key) op = 'DeleteObject';
  return { op, bucket: decodeURIComponent(bucket), key };
}

function xmlEscape(text: string): string {
  return text.replace(/[<>&'"]/g, (c) => `&#${c.charCodeAt(0)};`);
}

function sendXml(res: http.ServerResponse, status: number, body: string): void {
  const data = Buffer.from(`<?xml version="1.0" encoding="UTF-8"?>\n${body}`);
  res.writeHead(status, { 'content-type': 'application/xml', 'content-length': data.length });
  res.end(data);
}

function s3Error(res: http.ServerResponse, status: number, code: string, message: string): void {
  sendXml(res, status, `<Error><Code>${code}</Code><Message>${xmlEscape(message)}</Message></Error>`);
}

async function drain(req: http.IncomingMessage): Promise<number> {
  let bytes = 0;
  for await (const chunk of req) bytes += (chunk as Buffer).length;
  return bytes;
}

export async function startS3Proxy(target: string, options: { faults?: FaultPlan } = {}): Promise<S3Proxy> {
  const upstream = new URL(target);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  const emptyStats = (): ProxyStats => ({ requests: 0, byOp: {}, faults: {}, uploadBytes: 0, log: [] });
  let stats = emptyStats();
  let plan: FaultPlan | null = options.faults ?? null;
  let rng = random(plan?.seed ?? 1);
  let delay: ((op: S3Op) => number) | null = null;
  const multipart = new Map<string, MultipartRecord>();

  const pickFault = (op: S3Op): FaultKind | null => {
    if (!plan || plan.rate <= 0 || plan.spare?.includes(op)) return null;
    if (op === 'ListMultipartUploads' || op === 'AbortMultipartUpload') return null; // answered here
    if (rng() >= plan.rate) return null;
    const kinds = (
      plan.kinds ?? ['5xx', 'reset', 'reset-mid-body', 'drop-response', 'truncate', 'slow']
    ).filter(
      (kind) =>
        // A lost CreateMultipartUpload answer leaves an upload the client never heard of; S3 clients
        // (and this one) sweep those, but only after the fact: keep the fault plan honest about it.
        !(kind === 'truncate' && op !== 'GetObject') &&
        !(kind === 'reset-mid-body' && !['PutObject', 'UploadPart'].includes(op)),
    );
    return kinds[Math.floor(rng() * kinds.length)] ?? null;
  };

  const listUploads = (res: http.ServerResponse, bucket: string, url: URL) => {
    const prefix = url.searchParams.get('prefix') ?? '';
    const open = [...multipart.values()].filter(
      (u) => u.bucket === bucket && u.state === 'open' && u.key.startsWith(prefix),
    );
    const items = open
      .map(
        (u) =>
          `<Upload><Key>${xmlEscape(u.key)}</Key><UploadId>${u.uploadId}</UploadId>` +
          `<Initiated>${u.initiated.toISOString()}</Initiated><StorageClass>STANDARD</StorageClass></Upload>`,
      )
      .join('');
    sendXml(
      res,
      200,
      `<ListMultipartUploadsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Bucket>${xmlEscape(bucket)}</Bucket>` +
        `<Prefix>${xmlEscape(prefix)}</Prefix><MaxUploads>1000</MaxUploads><IsTruncated>false</IsTruncated>${items}</ListMultipartUploadsResult>`,
    );
  };

  const forward = (
    req: http.IncomingMessage,
    res: http.ServerResponse,
    op: S3Op,
    fault: FaultKind | null,
    onResponse?: (status: number, body: Buffer) => void,
  ) => {
    const outgoing = http.request(
      {
        host: upstream.hostname,
        port: upstream.port,
        method: req.method,
        path: req.url,
        headers: req.headers,
        agent,
      },
      (upstreamRes) => {
        const chunks: Buffer[] = [];
        upstreamRes.on('data', (chunk: Buffer) => chunks.push(chunk));
        upstreamRes.on('error', () => res.destroy());
        upstreamRes.on('end', () => {
          const body = Buffer.concat(chunks);
          onResponse?.(upstreamRes.statusCode ?? 0, body);
          if (fault === 'drop-response') {
            req.socket.destroy();
            return;
          }
          const headers = { ...upstreamRes.headers };
          if (fault === 'truncate' && body.length > 1) {
            res.writeHead(upstreamRes.statusCode ?? 502, headers);
            res.write(body.subarray(0, Math.floor(body.length / 2)));
            setImmediate(() => req.socket.destroy());
            return;
          }
          res.writeHead(upstreamRes.statusCode ?? 502, headers);
          res.end(body);
        });
      },
    );
    outgoing.on('error', () => res.destroy());
    let forwarded = 0;
    req.on('data', (chunk: Buffer) => {
      forwarded += chunk.length;
      if (fault === 'reset-mid-body' && forwarded > 0) {
        outgoing.destroy();
        req.socket.destroy();
        return;
      }
      if (op === 'PutObject' || op === 'UploadPart') stats.uploadBytes += chunk.length;
      outgoing.write(chunk);
    });
    req.on('end', () => outgoing.end());
    req.on('error', () => outgoing.destroy());
  };

  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://proxy');
    const { op, bucket, key } = classify(req.method ?? 'GET', url);
    stats.requests += 1;
    stats.byOp[op] = (stats.byOp[op] ?? 0) + 1;
    if (stats.log.length < 10_000) stats.log.push({ op, key });
    const fault = pickFault(op);
    if (fault) stats.faults[fault] = (stats.faults[fault] ?? 0) + 1;
    void (async () => {
      const extra = delay?.(op) ?? 0;
      if (extra > 0) await sleep(extra);
      if (fault === 'slow') {
        const [min, max] = plan?.slowMs ?? [300, 1500];
        await sleep(min + rng() * (max - min));
      }
      if (fault === 'reset') {
        req.socket.destroy();
        return;
      }
      if (fault === '5xx') {
        await drain(req);
        if (rng() < 0.5) s3Error(res, 503, 'SlowDown', 'Please reduce your request rate.');
        else s3Error(res, 500, 'InternalError', 'We encountered an internal error. Please try again.');
        return;
      }
      if (op === 'ListMultipartUploads') {
        await drain(req);
        listUploads(res, bucket, url);
        return;
      }
      const uploadId = url.searchParams.get('uploadId') ?? '';
      if (op === 'AbortMultipartUpload') {
        await drain(req);
        const record = multipart.get(uploadId);
        if (!record || record.state !== 'open') {
          s3Error(res, 404, 'NoSuchUpload', 'The specified upload does not exist.');
          return;
        }
        record.state = 'aborted';
        res.writeHead(204);
        res.end();
        return;
      }
      if (
        (op === 'UploadPart' || op === 'CompleteMultipartUpload') &&
        multipart.get(uploadId)?.state === 'aborted'
      ) {
        await drain(req);
        s3Error(res, 404, 'NoSuchUpload', 'The specified upload does not exist.');
        return;
      }
      forward(req, res, op, fault, (status, body) => {
        if (status !== 200) return;
        if (op === 'CreateMultipartUpload') {
          const id = /<UploadId>([^<]+)<\/UploadId>/.exec(body.toString('utf8'))?.[1];
          if (id) multipart.set(id, { bucket, key, uploadId: id, initiated: new Date(), state: 'open' });
        } else if (op === 'CompleteMultipartUpload' && !body.toString('utf8').includes('<Error>')) {
          const record = multipart.get(uploadId);
          if (record) record.state = 'completed';
        }
      });
    })().catch(() => res.destroy());
  });
  server.keepAliveTimeout = 5000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    get stats() {
      return stats;
    },
    resetStats() {
      stats = emptyStats();
    },
    setFaults(next) {
      plan = next;
      rng = random(next?.seed ?? 1);
    },
    setDelay(next) {
      delay = next;
    },
    uploads: () => [...multipart.values()].map((u) => ({ ...u })),
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      agent.destroy();
    },
  };
}

interface S3rverInstance {
  run(): Promise<AddressInfo>;
  close(): Promise<void>;
}

/** s3rver on 127.0.0.1 (port 0) with one bucket; it wants access key and secret `S3RVER`. */
export async function startS3rver(
  directory: string,
  bucket: string,
): Promise<{ endpoint: string; close(): Promise<void> }> {
  const S3rver = createRequire(import.meta.url)('s3rver') as new (
    options: Record<string, unknown>,
  ) => S3rverInstance;
  const server = new S3rver({
    address: '127.0.0.1',
    port: 0,
    silent: true,
    directory,
    configureBuckets: [{ name: bucket }],
  });
  const { port } = await server.run();
  return { endpoint: `http://127.0.0.1:${port}`, close: () => server.close() };
}

/** Environment for SDK clients pointed at a local endpoint (no credentials of this machine leak in). */
export function localAwsEnv(endpoint: string): NodeJS.ProcessEnv {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('AWS_')));
  return {
    ...clean,
    AWS_ACCESS_KEY_ID: 'S3RVER',
    AWS_SECRET_ACCESS_KEY: 'S3RVER',
    AWS_REGION: 'us-east-1',
    AWS_EC2_METADATA_DISABLED: 'true',
    AWS_ENDPOINT_URL_S3: endpoint,
  };
}
