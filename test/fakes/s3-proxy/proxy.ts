// An HTTP proxy in front of s3rver that (1) injects faults into a seeded share of the requests and
// (2) keeps the multipart-upload bookkeeping s3rver lacks (ListMultipartUploads, AbortMultipartUpload),
// so "no orphaned multipart uploads" can be checked through the real S3 wire protocol.
// Behaviour spec: ./README.md.
import { createHash } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { startS3rverProcess } from '../s3rver/process.js';

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
  /** Requests that carried a `Content-MD5` header. */
  contentMd5: number;
  /** With `verifyChecksums`: bodies whose checksums matched, and bodies refused (by error code). */
  verified: number;
  refused: Partial<Record<string, number>>;
  /** Bodies damaged on purpose (`corrupt`). */
  corrupted: number;
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
  /** Flips one byte of the bodies this picks, on their way to S3 (a link that damages data). */
  setCorrupt(pick: ((op: S3Op, key: string) => boolean) | null): void;
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

export interface S3ProxyOptions {
  faults?: FaultPlan;
  /**
   * Check what S3 checks (s3rver checks nothing): every PutObject/UploadPart must carry
   * `x-amz-checksum-sha256` and a signed payload hash matching its body, else 400 `BadDigest` /
   * `XAmzContentSHA256Mismatch`; a CompleteMultipartUpload of an upload created with
   * `x-amz-checksum-algorithm: SHA256` must name every part's checksum, else 400 `InvalidPart`.
   */
  verifyChecksums?: boolean;
}

/** What S3 answers a body that does not match its checksums, or null when it matches. */
function digestError(headers: http.IncomingHttpHeaders, body: Buffer): [string, string] | null {
  const checksum = headers['x-amz-checksum-sha256'];
  if (typeof checksum !== 'string')
    return ['InvalidRequest', 'Missing required header x-amz-checksum-sha256.'];
  const digest = createHash('sha256').update(body).digest();
  if (checksum !== digest.toString('base64'))
    return ['BadDigest', 'The SHA256 you specified did not match the calculated checksum.'];
  const payload = headers['x-amz-content-sha256'];
  if (typeof payload === 'string' && /^[0-9a-f]{64}$/.test(payload) && payload !== digest.toString('hex'))
    return [
      'XAmzContentSHA256Mismatch',
      "The provided 'x-amz-content-sha256' header does not match what was computed.",
    ];
  return null;
}

export async function startS3Proxy(target: string, options: S3ProxyOptions = {}): Promise<S3Proxy> {
  const upstream = new URL(target);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  const emptyStats = (): ProxyStats => ({
    requests: 0,
    byOp: {},
    faults: {},
    uploadBytes: 0,
    log: [],
    contentMd5: 0,
    verified: 0,
    refused: {},
    corrupted: 0,
  });
  let corrupt: ((op: S3Op, key: string) => boolean) | null = null;
  /** Per upload id: whether it was created with SHA-256 checksums, and each part's checksum. */
  const partChecksums = new Map<string, { sha256: boolean; parts: Map<number, string> }>();
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

  /** Reads a body that S3 would verify, damages it when asked, and checks it as S3 does. */
  const verify = async (
    req: http.IncomingMessage,
    op: S3Op,
    uploadId: string,
  ): Promise<{ body?: Buffer; error?: [string, string] | null }> => {
    if (op !== 'PutObject' && op !== 'UploadPart' && op !== 'CompleteMultipartUpload') return {};
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks);
    if (op === 'CompleteMultipartUpload') {
      const upload = partChecksums.get(uploadId);
      if (!upload?.sha256) return { body };
      for (const part of body.toString('utf8').match(/<Part>.*?<\/Part>/gs) ?? []) {
        const number = Number(/<PartNumber>(\d+)<\/PartNumber>/.exec(part)?.[1]);
        const named = /<ChecksumSHA256>([^<]+)<\/ChecksumSHA256>/.exec(part)?.[1];
        if (!named || named !== upload.parts.get(number))
          return {
            error: [
              'InvalidPart',
              `One or more of the specified parts could not be found. Part ${number}: checksum ${named ?? 'missing'}.`,
            ],
          };
      }
      return { body };
    }
    const key = classify(req.method ?? 'PUT', new URL(req.url ?? '/', 'http://proxy')).key;
    if (corrupt?.(op, key) && body.length > 0) {
      body[Math.floor(body.length / 2)]! ^= 0x01;
      stats.corrupted += 1;
    }
    const error = digestError(req.headers, body);
    if (!error) stats.verified += 1;
    return { body, error };
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
    buffered?: Buffer,
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
    if (buffered) {
      if (op === 'PutObject' || op === 'UploadPart') stats.uploadBytes += buffered.length;
      outgoing.end(buffered);
      return;
    }
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
    if (req.headers['content-md5'] !== undefined) stats.contentMd5 += 1;
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
      let buffered: Buffer | undefined;
      if (options.verifyChecksums && fault !== 'reset-mid-body' && fault !== 'drop-response') {
        const refusal = await verify(req, op, uploadId);
        if (refusal.error) {
          stats.refused[refusal.error[0]] = (stats.refused[refusal.error[0]] ?? 0) + 1;
          s3Error(res, 400, refusal.error[0], refusal.error[1]);
          return;
        }
        buffered = refusal.body;
      }
      forward(
        req,
        res,
        op,
        fault,
        (status, body) => {
          if (status !== 200) return;
          if (op === 'CreateMultipartUpload') {
            const id = /<UploadId>([^<]+)<\/UploadId>/.exec(body.toString('utf8'))?.[1];
            if (id) multipart.set(id, { bucket, key, uploadId: id, initiated: new Date(), state: 'open' });
            if (id)
              partChecksums.set(id, {
                sha256: req.headers['x-amz-checksum-algorithm'] === 'SHA256',
                parts: new Map(),
              });
          } else if (op === 'UploadPart') {
            const part = Number(url.searchParams.get('partNumber'));
            const sent = req.headers['x-amz-checksum-sha256'];
            if (typeof sent === 'string') partChecksums.get(uploadId)?.parts.set(part, sent);
          } else if (op === 'CompleteMultipartUpload' && !body.toString('utf8').includes('<Error>')) {
            const record = multipart.get(uploadId);
            if (record) record.state = 'completed';
          }
        },
        buffered,
      );
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
    setCorrupt(pick) {
      corrupt = pick;
    },
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      agent.destroy();
    },
  };
}

/**
 * s3rver on 127.0.0.1 (port 0) with one bucket, in its own process with OpenSSL's legacy provider (so
 * listings beyond 1,000 keys work); it wants access key and secret `S3RVER`.
 */
export async function startS3rver(
  directory: string,
  bucket: string,
): Promise<{ endpoint: string; close(): Promise<void> }> {
  const server = await startS3rverProcess(directory, [bucket]);
  return { endpoint: server.endpoint, close: () => server.close() };
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
