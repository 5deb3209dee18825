// A generic fault-injecting HTTP proxy for the AWS fakes (Batch REST-JSON, CloudWatch Logs JSON 1.1,
// anything HTTP): forwards every request unchanged to `target` (method, path, headers — the SDK's
// SigV4 header stays as signed) unless the current rule picks a fault for it. Binds 127.0.0.1, port 0.
// (S3 has its own proxy with multipart bookkeeping: test/fakes/s3-proxy/.)
//
// Faults, as a client sees them:
//   throttle       HTTP 429, `x-amzn-ErrorType: TooManyRequestsException` (AWS's "Rate exceeded")
//   5xx            HTTP 503, `x-amzn-ErrorType: ServerException`
//   reset          the connection is destroyed before anything is forwarded
//   drop-response  forwarded (it takes effect), then the connection is destroyed instead of the answer
//   stall          held for `stallMs` (default 2 s), then forwarded
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

export type FaultKind = 'throttle' | '5xx' | 'reset' | 'drop-response' | 'stall';

export interface ProxiedRequest {
  method: string;
  path: string;
  /** `x-amz-target` (JSON protocols) or the last path segment (REST: `describejobs`, `submitjob`). */
  operation: string;
}

export interface Fault {
  kind: FaultKind;
  stallMs?: number;
}

export interface ProxyRecord extends ProxiedRequest {
  at: number;
  fault: FaultKind | null;
  status: number | null;
}

export interface FaultProxy {
  endpoint: string;
  /** Every request seen (at most 100,000). */
  readonly requests: ProxyRecord[];
  /** Decides per request; null passes everything. */
  setRule(rule: ((request: ProxiedRequest) => Fault | null) | null): void;
  close(): Promise<void>;
}

export async function startFaultProxy(target: string): Promise<FaultProxy> {
  const upstream = new URL(target);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  const requests: ProxyRecord[] = [];
  let rule: ((request: ProxiedRequest) => Fault | null) | null = null;

  const server = http.createServer((req, res) => {
    const path = req.url ?? '/';
    const target = req.headers['x-amz-target'];
    const operation =
      typeof target === 'string' ? target : (path.split('?')[0]!.split('/').filter(Boolean).at(-1) ?? '');
    const request: ProxiedRequest = { method: req.method ?? 'GET', path, operation };
    const fault = rule?.(request) ?? null;
    const record: ProxyRecord = { ...request, at: Date.now(), fault: fault?.kind ?? null, status: null };
    if (requests.length < 100_000) requests.push(record);
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('error', () => undefined);
    if (fault?.kind === 'reset') {
      req.socket.destroy();
      return;
    }
    req.on('end', () => {
      void (async () => {
        const answer = (status: number, type: string, message: string) => {
          record.status = status;
          res.writeHead(status, { 'content-type': 'application/json', 'x-amzn-errortype': type });
          res.end(JSON.stringify({ message }));
        };
        if (fault?.kind === 'throttle') return answer(429, 'TooManyRequestsException', 'Rate exceeded');
        if (fault?.kind === '5xx') return answer(503, 'ServerException', 'Service unavailable (injected)');
        if (fault?.kind === 'stall') await sleep(fault.stallMs ?? 2000);
        const forward = http.request(
          {
            host: upstream.hostname,
            port: upstream.port,
            method: req.method,
            path,
            headers: req.headers,
            agent,
          },
          (upstreamRes) => {
            const body: Buffer[] = [];
            upstreamRes.on('data', (chunk: Buffer) => body.push(chunk));
            upstreamRes.on('end', () => {
              if (fault?.kind === 'drop-response') {
                res.socket?.destroy();
                return;
              }
              record.status = upstreamRes.statusCode ?? 0;
              res.writeHead(upstreamRes.statusCode ?? 502, upstreamRes.headers);
              res.end(Buffer.concat(body));
            });
          },
        );
        forward.on('error', () => res.socket?.destroy());
        forward.end(Buffer.concat(chunks));
      })();
    });
  });
  server.on('clientError', (_error, socket) => socket.destroy());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    requests,
    setRule(next) {
      rule = next;
    },
    close: async () => {
      server.closeAllConnections();
      agent.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
