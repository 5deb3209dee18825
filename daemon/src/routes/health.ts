import type { FastifyInstance } from 'fastify';

export function healthRoute(version: string) {
  return async (app: FastifyInstance): Promise<void> => {
    app.get('/health', async () => ({ ok: true, name: 'skyfarm', version, pid: process.pid }));
  };
}
