import type { FastifyReply, FastifyRequest } from 'fastify';

/**
 * Answers with an error and drops the connection. A refused WebSocket upgrade is no longer tracked by
 * the HTTP server, so without this its socket would linger and hold up the daemon's shutdown.
 */
export function refuse(
  request: FastifyRequest,
  reply: FastifyReply,
  status: number,
  body: { code: string; message: string },
) {
  reply.raw.once('finish', () => request.raw.socket?.destroy());
  return reply.code(status).header('connection', 'close').send(body);
}
