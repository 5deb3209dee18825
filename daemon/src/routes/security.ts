// Who may talk to the daemon at all: only loopback Host names (DNS rebinding defence) and never a
// browser (any Origin header). Runs before every route, including the WebSocket upgrade.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { refuse } from './refuse.js';

const ALLOWED_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]']);

export function hostIsLoopback(host: string | undefined): boolean {
  if (!host) return false;
  const match = /^(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(host.trim().toLowerCase());
  return match !== null && ALLOWED_HOSTS.has(match[1]!);
}

export async function securityPlugin(app: FastifyInstance): Promise<void> {
  app.addHook('onRequest', async (request: FastifyRequest, reply: FastifyReply) => {
    if (request.headers.origin !== undefined) {
      return refuse(request, reply, 403, {
        code: 'FORBIDDEN_ORIGIN',
        message: 'requests from web pages (with an Origin header) are refused',
      });
    }
    if (!hostIsLoopback(request.headers.host)) {
      return refuse(request, reply, 403, {
        code: 'FORBIDDEN_ORIGIN',
        message: 'only localhost, 127.0.0.1 and [::1] are accepted as Host',
      });
    }
  });
}
