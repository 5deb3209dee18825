// Request handlers by method. Features register theirs; the WebSocket layer only dispatches.
import type { Method, RequestMap } from '../../../protocol/generated/protocol.js';
import type { Notify } from '../notify.js';

export interface RequestContext {
  notify: Notify;
  signal: AbortSignal;
}

export type Handler<M extends Method> = (
  params: RequestMap[M]['params'],
  context: RequestContext,
) => Promise<RequestMap[M]['result']> | RequestMap[M]['result'];

/** What wants to know when requests run (util/idle-memory.ts): begin() returns the end. */
export interface RequestActivity {
  begin(): () => void;
}

export class RpcRegistry {
  private readonly handlers = new Map<Method, Handler<Method>>();

  constructor(private readonly activity?: RequestActivity) {}

  register<M extends Method>(method: M, handler: Handler<M>): void {
    this.handlers.set(method, handler as unknown as Handler<Method>);
  }

  get(method: Method): Handler<Method> | undefined {
    const handler = this.handlers.get(method);
    const activity = this.activity;
    if (!handler || !activity) return handler;
    return async (params, context) => {
      const end = activity.begin();
      try {
        return await handler(params, context);
      } finally {
        end();
      }
    };
  }
}
