// A fake CloudWatch Logs endpoint (JSON 1.1, `X-Amz-Target: Logs_20140328.<Operation>`, as the real
// @aws-sdk/client-cloudwatch-logs speaks it). It records every call; the fake Batch endpoint appends
// container output to it the way the awslogs log driver does. Behaviour: see SPEC.md beside this file.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';

export interface LogEvent {
  timestamp: number;
  message: string;
  ingestionTime: number;
}

export interface FakeLogs {
  endpoint: string;
  calls: Array<{ operation: string; input: Record<string, unknown> }>;
  /** What the awslogs driver does with a container's output lines. */
  append(group: string, stream: string, messages: string[]): void;
  events(group: string, stream: string): LogEvent[];
  close(): Promise<void>;
}

class LogsError extends Error {
  constructor(
    readonly type: string,
    message: string,
  ) {
    super(message);
  }
}

async function readBody(request: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

function reply(response: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  response.writeHead(status, {
    'content-type': 'application/x-amz-json-1.1',
    'content-length': Buffer.byteLength(text),
    'x-amzn-requestid': randomBytes(8).toString('hex'),
  });
  response.end(text);
}

const PAGE = 100;

export async function startFakeLogs(): Promise<FakeLogs> {
  const groups = new Map<string, Map<string, LogEvent[]>>();
  const calls: FakeLogs['calls'] = [];
  const group = (name: unknown, create = false): Map<string, LogEvent[]> => {
    if (typeof name !== 'string' || !name)
      throw new LogsError('InvalidParameterException', 'logGroupName is required');
    let found = groups.get(name);
    if (!found && create) groups.set(name, (found = new Map()));
    if (!found) throw new LogsError('ResourceNotFoundException', 'The specified log group does not exist.');
    return found;
  };
  const stream = (groupName: unknown, name: unknown): LogEvent[] => {
    const found = group(groupName).get(String(name));
    if (!found) throw new LogsError('ResourceNotFoundException', 'The specified log stream does not exist.');
    return found;
  };
  const append = (groupName: string, streamName: string, messages: string[]) => {
    const streams = group(groupName, true);
    let events = streams.get(streamName);
    if (!events) streams.set(streamName, (events = []));
    const now = Date.now();
    for (const message of messages) events.push({ timestamp: now, message, ingestionTime: now });
  };

  const operations: Record<string, (input: Record<string, unknown>) => unknown> = {
    CreateLogGroup: (input) => {
      if (groups.has(String(input['logGroupName']))) {
        throw new LogsError('ResourceAlreadyExistsException', 'The specified log group already exists');
      }
      group(input['logGroupName'], true);
      return {};
    },
    CreateLogStream: (input) => {
      const streams = group(input['logGroupName']);
      const name = String(input['logStreamName'] ?? '');
      if (streams.has(name))
        throw new LogsError('ResourceAlreadyExistsException', 'The specified log stream already exists');
      streams.set(name, []);
      return {};
    },
    PutLogEvents: (input) => {
      const events = stream(input['logGroupName'], input['logStreamName']);
      const now = Date.now();
      for (const event of (input['logEvents'] as Array<{ timestamp: number; message: string }>) ?? []) {
        events.push({ timestamp: event.timestamp, message: event.message, ingestionTime: now });
      }
      return { nextSequenceToken: String(events.length) };
    },
    DescribeLogStreams: (input) => {
      const prefix = String(input['logStreamNamePrefix'] ?? '');
      const names = [...group(input['logGroupName']).entries()].filter(([name]) => name.startsWith(prefix));
      return {
        logStreams: names.map(([name, events]) => ({
          logStreamName: name,
          firstEventTimestamp: events[0]?.timestamp,
          lastEventTimestamp: events.at(-1)?.timestamp,
          storedBytes: 0,
        })),
      };
    },
    GetLogEvents: (input) => {
      const events = stream(input['logGroupName'], input['logStreamName']);
      const limit = Math.min(Number(input['limit'] ?? PAGE), 10_000);
      const token = typeof input['nextToken'] === 'string' ? input['nextToken'] : undefined;
      // Tokens are `f/<index>` (forward). Without one, startFromHead decides where reading begins.
      let start = token
        ? Number(token.slice(2))
        : input['startFromHead']
          ? 0
          : Math.max(0, events.length - limit);
      if (!Number.isFinite(start) || start < 0) start = 0;
      const page = events.slice(start, start + limit);
      const end = start + page.length;
      return {
        events: page,
        nextForwardToken: `f/${end}`,
        nextBackwardToken: `b/${start}`,
      };
    },
  };

  const server = createServer((request, response) => {
    void (async () => {
      const body = await readBody(request);
      const target = String(request.headers['x-amz-target'] ?? '');
      const operation = target.startsWith('Logs_20140328.') ? target.slice('Logs_20140328.'.length) : '';
      try {
        if (request.method !== 'POST' || !operation)
          throw new LogsError('UnknownOperationException', 'not a Logs request');
        const handler = operations[operation];
        if (!handler)
          throw new LogsError(
            'UnknownOperationException',
            `fake CloudWatch Logs does not implement ${operation}`,
          );
        const input = JSON.parse(body || '{}') as Record<string, unknown>;
        calls.push({ operation, input });
        reply(response, 200, handler(input));
      } catch (error) {
        if (error instanceof LogsError) reply(response, 400, { __type: error.type, message: error.message });
        else reply(response, 500, { __type: 'ServiceUnavailableException', message: String(error) });
      }
    })();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    calls,
    append,
    events: (groupName, streamName) => groups.get(groupName)?.get(streamName)?.slice() ?? [],
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
