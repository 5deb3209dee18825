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

export class RpcRegistry {
  private readonly handlers = new Map<Method, Handler<Method>>();

  register<M extends Method>(method: M, handler: Handler<M>): void {
    this.handlers.set(method, handler as unknown as Handler<Method>);
  }

  get(method: Method): Handler<Method> | undefined {
    return this.handlers.get(method);
  }
}
