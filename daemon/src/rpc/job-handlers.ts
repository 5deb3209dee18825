import type { JobService } from '../jobs/job-service.js';
import type { RpcRegistry } from './registry.js';

export function registerJobHandlers(registry: RpcRegistry, jobs: JobService): void {
  registry.register('render.submit', (params) => jobs.submit(params));
  registry.register('jobs.list', (params) => jobs.list(params));
  registry.register('jobs.get', (params) => ({ job: jobs.get(params.jobId) }));
  registry.register('jobs.cancel', async (params) => ({ job: await jobs.cancel(params.jobId) }));
  registry.register('jobs.logs', (params) => ({ lines: jobs.logs(params.jobId, params.tail) }));
}
