// A fake Amazon SES v2 endpoint (REST-JSON, as the real @aws-sdk/client-sesv2 speaks it) that records
// every SendEmail call. Behaviour: see SPEC.md beside this file.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';

export interface SentMail {
  messageId: string;
  from: string;
  to: string[];
  subject: string;
  body: string;
  at: Date;
}

export interface FakeSes {
  endpoint: string;
  sent: SentMail[];
  /** Next SendEmail calls fail with this error type (e.g. MessageRejected) until cleared. */
  failWith: string | null;
  /** Resolves when `count` mails have been sent (or rejects after `timeoutMs`). */
  waitForMail(count: number, timeoutMs?: number): Promise<SentMail[]>;
  /** While held, SendEmail calls get no answer (the publish stage that sends stays RUNNING) until released. */
  hold(held: boolean): void;
  close(): Promise<void>;
}

interface SendEmailBody {
  FromEmailAddress?: string;
  Destination?: { ToAddresses?: string[] };
  Content?: {
    Simple?: { Subject?: { Data?: string }; Body?: { Text?: { Data?: string }; Html?: { Data?: string } } };
  };
}

async function readBody(request: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

function reply(response: ServerResponse, status: number, body: unknown, errorType?: string): void {
  const text = JSON.stringify(body);
  response.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    'x-amzn-requestid': randomBytes(8).toString('hex'),
    ...(errorType ? { 'x-amzn-errortype': errorType } : {}),
  });
  response.end(text);
}

export async function startFakeSes(): Promise<FakeSes> {
  const sent: SentMail[] = [];
  const waiters: Array<() => void> = [];
  let gate: { promise: Promise<void>; open: () => void } | null = null;
  const fake: FakeSes = {
    endpoint: '',
    sent,
    failWith: null,
    waitForMail(count, timeoutMs = 60_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          if (sent.length >= count) {
            clearTimeout(timer);
            resolve(sent.slice());
            return true;
          }
          return false;
        };
        const timer = setTimeout(
          () => reject(new Error(`only ${sent.length} of ${count} mails after ${timeoutMs} ms`)),
          timeoutMs,
        );
        if (!check()) waiters.push(() => void check());
      });
    },
    hold(held) {
      if (held && !gate) {
        let open = () => {};
        const promise = new Promise<void>((resolve) => (open = resolve));
        gate = { promise, open };
      } else if (!held && gate) {
        gate.open();
        gate = null;
      }
    },
    close: () => {
      fake.hold(false);
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
  const server: Server = createServer((request, response) => {
    void (async () => {
      const body = await readBody(request);
      while (gate) await gate.promise;
      if (request.method !== 'POST' || request.url?.split('?')[0] !== '/v2/email/outbound-emails') {
        reply(
          response,
          404,
          { message: `fake SES v2 does not implement ${request.method} ${request.url}` },
          'NotFoundException',
        );
        return;
      }
      if (!/^AWS4-HMAC-SHA256 Credential=/.test(request.headers.authorization ?? '')) {
        reply(response, 403, { message: 'missing signature' }, 'AccessDeniedException');
        return;
      }
      if (fake.failWith) {
        reply(response, 400, { message: `fake failure: ${fake.failWith}` }, fake.failWith);
        return;
      }
      const input = JSON.parse(body || '{}') as SendEmailBody;
      const to = input.Destination?.ToAddresses ?? [];
      const simple = input.Content?.Simple;
      if (!input.FromEmailAddress || to.length === 0 || !simple?.Subject?.Data) {
        reply(
          response,
          400,
          { message: 'FromEmailAddress, Destination and Content.Simple.Subject are required' },
          'BadRequestException',
        );
        return;
      }
      const mail: SentMail = {
        messageId: `fake-${randomBytes(8).toString('hex')}`,
        from: input.FromEmailAddress,
        to,
        subject: simple.Subject.Data,
        body: simple.Body?.Text?.Data ?? simple.Body?.Html?.Data ?? '',
        at: new Date(),
      };
      sent.push(mail);
      for (const waiter of waiters.splice(0)) waiter();
      reply(response, 200, { MessageId: mail.messageId });
    })().catch((error: unknown) => reply(response, 500, { message: String(error) }, 'InternalFailure'));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  fake.endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return fake;
}
