// Entry point for wiring: `createStackService(deps)` plus request handlers keyed by protocol method.
import type {
  StackDeployParams,
  StackDeployResult,
  StackDestroyParams,
  StackDestroyResult,
  StackStatusParams,
  StackStatusResult,
} from '../../../protocol/generated/protocol.js';
import type { Notify } from '../notify.js';
import type { StackService } from './service.js';

export * from './service.js';
export { DEFAULT_STACK_NAME } from './validate.js';

/** The three protocol methods, shaped as the WebSocket layer calls them (params, notify, signal). */
export function stackRequestHandlers(service: StackService) {
  return {
    'stack.status': async (params: StackStatusParams): Promise<StackStatusResult> => ({
      stack: await service.status(params),
    }),
    'stack.deploy': (
      params: StackDeployParams,
      notify: Notify,
      signal?: AbortSignal,
    ): Promise<StackDeployResult> => service.deploy(params, notify, signal),
    'stack.destroy': (
      params: StackDestroyParams,
      notify: Notify,
      signal?: AbortSignal,
    ): Promise<StackDestroyResult> => service.destroy(params, notify, signal),
  };
}
