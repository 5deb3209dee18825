// The /ws endpoint: token check on the upgrade, hello/welcome handshake, then requests dispatched
// to the registry and push events from the hub. Any bad message gets a typed error; nothing a client
// sends can crash the daemon.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { WebSocket, RawData } from 'ws';
import {
  LIMITS,
  MIN_PROTOCOL_VERSION,
  PROTOCOL_VERSION,
  type ErrorCode,
} from '../../../protocol/generated/protocol.js';
import { decodeClientMessage, peekEnvelope } from '../protocol/codec.js';
import { toErrorInfo } from '../errors.js';
import { tokenMatches } from '../config/token.js';
import { refuse } from '../routes/refuse.js';
import type { RpcRegistry } from '../rpc/registry.js';
import { sendJson, sendText, type ClientHub } from './hub.js';

export interface SocketOptions {
  token: string;
  version: string;
  registry: RpcRegistry;
  hub: ClientHub;
  /** Messages per second a connection may send before it gets RATE_LIMITED errors. */
  maxMessagesPerSecond?: number;
}

/** ErrorInfo.message holds at most 8192 characters; longer ones would make the error unreadable. */
const MAX_ERROR_MESSAGE = 8000;

function boundedMessage(message: string): string {
  if (message.length <= MAX_ERROR_MESSAGE) return message;
  return `${message.slice(0, MAX_ERROR_MESSAGE - 40)} … (${message.length - MAX_ERROR_MESSAGE + 40} more characters)`;
}

function bearer(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  if (typeof header !== 'string') return undefined;
  const match = /^Bearer\s+(\S+)$/i.exec(header);
  return match?.[1];
}

export function socketRoute(options: SocketOptions) {
  const rate = options.maxMessagesPerSecond ?? LIMITS.maxMessagesPerSecond;
  return async (app: FastifyInstance): Promise<void> => {
    app.get(
      '/ws',
      {
        websocket: true,
        preValidation: async (request, reply) => {
          if (!tokenMatches(bearer(request), options.token)) {
            return refuse(request, reply, 401, { code: 'UNAUTHORIZED', message: 'missing or wrong token' });
          }
        },
      },
      (socket: WebSocket, request: FastifyRequest) => {
        const log = request.log;
        let greeted = false;
        const inflight = new AbortController();
        // Token bucket: a burst of `rate` messages, refilled at `rate` per second.
        let tokens = rate;
        let lastRefill = Date.now();
        let rejectedInARow = 0;

        const fail = (id: string | null, code: ErrorCode, message: string) =>
          sendJson(socket, { type: 'error', id, code, message: boundedMessage(message) });
        // A refusal names the request it refuses whenever its id can be read, so no request waits.
        const idOf = (raw: Buffer): string | null => {
          const id = peekEnvelope(raw.toString('utf8')).id;
          return id !== undefined && id.length > 0 && id.length <= 64 ? id : null;
        };

        socket.on('message', (data: RawData, isBinary: boolean) => {
          const now = Date.now();
          tokens = Math.min(rate, tokens + ((now - lastRefill) / 1000) * rate);
          lastRefill = now;
          const raw = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer);
          if (tokens < 1) {
            rejectedInARow += 1;
            if (rejectedInARow > rate * 5) socket.close(1008, 'rate limit exceeded');
            else fail(idOf(raw), 'RATE_LIMITED', `more than ${rate} messages per second`);
            return;
          }
          tokens -= 1;
          rejectedInARow = 0;
          if (isBinary) {
            fail(idOf(raw), 'BAD_MESSAGE', 'binary frames are not accepted; send JSON text');
            return;
          }
          const decoded = decodeClientMessage(raw);
          if (!decoded.ok) {
            fail(decoded.id, decoded.code, decoded.message);
            return;
          }
          const message = decoded.message;
          if (message.type === 'hello') {
            if (message.protocol < MIN_PROTOCOL_VERSION || message.protocol > PROTOCOL_VERSION) {
              const advice =
                message.protocol > PROTOCOL_VERSION
                  ? 'update skyfarm (the daemon) to the same version as the client'
                  : `update ${message.client.name} to the daemon's version`;
              fail(
                null,
                'PROTOCOL_MISMATCH',
                `${message.client.name} ${message.client.version} speaks protocol ${message.protocol}, this daemon ` +
                  `(skyfarm ${options.version}) speaks ${MIN_PROTOCOL_VERSION}–${PROTOCOL_VERSION}: ${advice}`,
              );
              socket.close(1002, 'protocol mismatch');
              return;
            }
            greeted = true;
            // Version handshake: the client compares too and tells its user the command that fixes it.
            if (message.client.version !== options.version) {
              log.warn(
                {
                  client: message.client.name,
                  clientVersion: message.client.version,
                  daemonVersion: options.version,
                },
                `${message.client.name} ${message.client.version} connected to skyfarm ${options.version}: versions differ`,
              );
            }
            options.hub.add(socket);
            sendJson(socket, {
              type: 'welcome',
              protocol: PROTOCOL_VERSION,
              minProtocol: MIN_PROTOCOL_VERSION,
              daemon: { name: 'skyfarm', version: options.version },
            });
            return;
          }
          if (!greeted) {
            fail(message.id, 'HANDSHAKE_REQUIRED', 'send hello before any request');
            return;
          }
          const handler = options.registry.get(message.method);
          if (!handler) {
            fail(message.id, 'BACKEND_UNAVAILABLE', `${message.method} is not available in this daemon`);
            return;
          }
          Promise.resolve()
            .then(() => handler(message.params, { notify: options.hub.notify, signal: inflight.signal }))
            .then(
              (result) => {
                const text = JSON.stringify({
                  type: 'reply',
                  id: message.id,
                  method: message.method,
                  result,
                });
                const size = Buffer.byteLength(text);
                // A client drops a message over the limit unread: answer with an error it can read.
                if (size > LIMITS.maxMessageBytes) {
                  log.warn({ method: message.method, size }, 'reply over the message limit');
                  fail(
                    message.id,
                    'MESSAGE_TOO_LARGE',
                    `the reply to ${message.method} would be ${size} bytes, over the protocol's limit of ${LIMITS.maxMessageBytes} bytes`,
                  );
                } else sendText(socket, text);
              },
              (error: unknown) => {
                const info = toErrorInfo(error);
                if (info.code === 'INTERNAL')
                  log.error({ err: error, method: message.method }, 'request failed');
                fail(message.id, info.code, info.message);
              },
            );
        });

        socket.on('close', () => {
          inflight.abort();
          options.hub.remove(socket);
        });
        // Protocol violations and resets are the client's doing, not the daemon's: debug, not warn.
        socket.on('error', (error) => log.debug({ err: error.message }, 'websocket error'));
      },
    );
  };
}
