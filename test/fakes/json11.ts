// A tiny AWS JSON 1.1 endpoint (POST /, `X-Amz-Target: <Prefix>.<Operation>`, JSON in and out; errors
// as HTTP 400 with `{ __type, message }`), shared by the ECR and CodeBuild fakes. Binds 127.0.0.1, port 0.
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';

export class AwsJsonError extends Error {
  constructor(
    readonly type: string,
    message: string,
  ) {
    super(message);
  }
}

export type Operations = Record<string, (input: Record<string, unknown>) => unknown>;

export interface JsonEndpoint {
  endpoint: string;
  calls: Array<{ operation: string; input: Record<string, unknown>; at: number }>;
  close(): Promise<void>;
}

async function readBody(request: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

export async function startJsonEndpoint(targetPrefix: string, operations: Operations): Promise<JsonEndpoint> {
  const calls: JsonEndpoint['calls'] = [];
  const server = createServer((request, response) => {
    void (async () => {
      const body = await readBody(request);
      const target = String(request.headers['x-amz-target'] ?? '');
      const operation = target.startsWith(`${targetPrefix}.`) ? target.slice(targetPrefix.length + 1) : '';
      let status = 200;
      let out: unknown;
      try {
        if (request.method !== 'POST' || !operation)
          throw new AwsJsonError('UnknownOperationException', `not a ${targetPrefix} request`);
        if (!String(request.headers['authorization'] ?? '').startsWith('AWS4-HMAC-SHA256'))
          throw new AwsJsonError('MissingAuthenticationTokenException', 'Missing Authentication Token');
        const handler = operations[operation];
        if (!handler)
          throw new AwsJsonError('UnknownOperationException', `the fake does not implement ${operation}`);
        const input = JSON.parse(body || '{}') as Record<string, unknown>;
        calls.push({ operation, input, at: Date.now() });
        out = handler(input);
      } catch (error) {
        status = error instanceof AwsJsonError ? 400 : 500;
        out =
          error instanceof AwsJsonError
            ? { __type: error.type, message: error.message }
            : { __type: 'InternalFailure', message: String(error) };
      }
      const text = JSON.stringify(out);
      response.writeHead(status, {
        'content-type': 'application/x-amz-json-1.1',
        'content-length': Buffer.byteLength(text),
        'x-amzn-requestid': randomBytes(8).toString('hex'),
      });
      response.end(text);
    })();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    calls,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
