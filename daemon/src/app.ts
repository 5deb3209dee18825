// buildApp(deps) returns the fastify app; only the daemon entry point calls listen().
import Fastify, { type FastifyInstance } from 'fastify';
import websocket from '@fastify/websocket';
import type { Logger } from 'pino';
import { LIMITS } from '../../protocol/generated/protocol.js';
import { securityPlugin } from './routes/security.js';
import { healthRoute } from './routes/health.js';
import { socketRoute } from './ws/socket.js';
import type { RpcRegistry } from './rpc/registry.js';
import type { ClientHub } from './ws/hub.js';

export interface AppDeps {
  token: string;
  version: string;
  registry: RpcRegistry;
  hub: ClientHub;
  logger?: Logger | boolean;
  maxMessagesPerSecond?: number;
}

export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  // forceCloseConnections: stopping the daemon must not wait for a client that keeps its socket open.
  const common = { bodyLimit: 64 * 1024, forceCloseConnections: true };
  const app: FastifyInstance =
    typeof deps.logger === 'object'
      ? // Per-request lines only at warn: the daemon log is for jobs, not for every health check.
        (Fastify({
          ...common,
          // A quieter daemon log (e.g. silent in tests) stays quieter.
          loggerInstance: deps.logger.child(
            {},
            { level: deps.logger.isLevelEnabled('warn') ? 'warn' : deps.logger.level },
          ),
        }) as unknown as FastifyInstance)
      : Fastify({ ...common, logger: deps.logger ?? false });
  // Applied to the root instance (not encapsulated) so the checks cover every route.
  await securityPlugin(app);
  // Frames larger than this close the connection outright; up to it the codec answers MESSAGE_TOO_LARGE.
  await app.register(websocket, {
    options: { maxPayload: 4 * LIMITS.maxMessageBytes },
    // A client's broken frames (bad UTF-8, bad opcodes, oversized) end its connection; they are not
    // daemon errors, so they are logged at debug, not as errors with a stack each.
    // (Through the daemon's own logger: the per-request one stops at warn.)
    errorHandler: (error, socket, request) => {
      const log = typeof deps.logger === 'object' ? deps.logger : request.log;
      log.debug({ err: error.message, reqId: request.id }, 'websocket connection dropped');
      socket.terminate();
    },
  });
  await app.register(healthRoute(deps.version));
  await app.register(
    socketRoute({
      token: deps.token,
      version: deps.version,
      registry: deps.registry,
      hub: deps.hub,
      ...(deps.maxMessagesPerSecond !== undefined ? { maxMessagesPerSecond: deps.maxMessagesPerSecond } : {}),
    }),
  );
  return app;
}
