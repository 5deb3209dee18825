// Wires the stack service into the daemon: the three WebSocket methods (events broadcast to every
// client through the request context's notify), remembered outputs in SQLite, and the bucket lookup
// the upload path uses for `--stack-name`.
import type { BackendInfo, StackInfo } from '../../../protocol/generated/protocol.js';
import type { Db } from '../db/database.js';
import { SkyfarmError } from '../errors.js';
import type { RpcRegistry } from '../rpc/registry.js';
import { RememberedStacks } from './remembered.js';
import { USABLE_STATUSES, createStackService, type StackService, type StackServiceDeps } from './service.js';

export interface StackSetup {
  service: StackService;
  remembered: RememberedStacks;
  /** Registers stack.status, stack.deploy and stack.destroy. */
  register(registry: RpcRegistry): void;
  /** A stack's status, region and outputs: remembered if usable, else asked from CloudFormation. */
  resolveStack(stackName: string): Promise<StackInfo>;
  /** The farm bucket of a stack (its BucketName output). */
  resolveBucket(stackName: string): Promise<string>;
  /** For daemon.info: whether a usable stack is known. */
  backendInfo(): BackendInfo;
}

export function setupStack(
  options: { db: Db; env: NodeJS.ProcessEnv } & Partial<StackServiceDeps>,
): StackSetup {
  const { db, ...deps } = options;
  const remembered = new RememberedStacks(db);
  const service = createStackService({
    ...deps,
    remember: (info) => remembered.remember(info),
    forget: (name, region) => remembered.forget(name, region),
  });
  const resolveStack = async (stackName: string): Promise<StackInfo> => {
    const known = remembered.get(stackName);
    if (known && USABLE_STATUSES.has(known.status)) {
      const { seenAt: _seenAt, ...info } = known;
      return info;
    }
    return service.status({ stackName });
  };
  return {
    service,
    remembered,
    register(registry) {
      registry.register('stack.status', async (params) => ({ stack: await service.status(params) }));
      registry.register('stack.deploy', (params, context) =>
        service.deploy(params, context.notify, context.signal),
      );
      registry.register('stack.destroy', (params, context) =>
        service.destroy(params, context.notify, context.signal),
      );
    },
    resolveStack,
    async resolveBucket(stackName) {
      const info = await resolveStack(stackName);
      const bucket = info.outputs.BucketName;
      if (!bucket) {
        throw new SkyfarmError(
          'STACK_FAILED',
          `Stack ${stackName} is ${info.status} and has no bucket yet; run \`skyfarm deploy\`.`,
        );
      }
      return bucket;
    },
    backendInfo() {
      const stack = remembered.get();
      if (!stack) return { available: false, reason: 'no AWS stack deployed (skyfarm deploy)' };
      if (!USABLE_STATUSES.has(stack.status)) {
        return { available: false, reason: `AWS stack ${stack.stackName} is ${stack.status}` };
      }
      return { available: true };
    },
  };
}
