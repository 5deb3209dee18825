// Progress flows through one injected sink: the WebSocket broadcaster, the CLI printer and test recorders
// all implement `Notify`.
import type { EventMap, EventName } from '../../protocol/generated/protocol.js';

export type Notify = <E extends EventName>(event: E, data: EventMap[E]) => void;

export const silentNotify: Notify = () => {};
