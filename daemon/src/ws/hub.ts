// Every connected, greeted client; `notify` broadcasts a push event to all of them.
import type { WebSocket } from 'ws';
import type { EventMap, EventName } from '../../../protocol/generated/protocol.js';
import type { Notify } from '../notify.js';

/** A client that does not read its socket must not make the daemon buffer without bound. */
export const MAX_BUFFERED_BYTES = 16 * 1024 * 1024;

export function sendJson(socket: WebSocket, message: unknown): void {
  sendText(socket, JSON.stringify(message));
}

export function sendText(socket: WebSocket, text: string): void {
  if (socket.readyState !== socket.OPEN) return;
  if (socket.bufferedAmount > MAX_BUFFERED_BYTES) {
    // Dropped at once: a close frame would queue behind what it never read, and the closing handshake
    // would keep those megabytes for another 30 s.
    socket.terminate();
    return;
  }
  socket.send(text);
}

export class ClientHub {
  private readonly sockets = new Set<WebSocket>();
  private readonly extraSinks = new Set<Notify>();

  add(socket: WebSocket): void {
    this.sockets.add(socket);
  }

  remove(socket: WebSocket): void {
    this.sockets.delete(socket);
  }

  get size(): number {
    return this.sockets.size;
  }

  /** Other sinks (tests, in-process CLI) that receive every event too. */
  subscribe(sink: Notify): () => void {
    this.extraSinks.add(sink);
    return () => this.extraSinks.delete(sink);
  }

  readonly notify: Notify = <E extends EventName>(event: E, data: EventMap[E]) => {
    const message = { type: 'event', event, data };
    for (const socket of this.sockets) sendJson(socket, message);
    for (const sink of this.extraSinks) sink(event, data);
  };
}
