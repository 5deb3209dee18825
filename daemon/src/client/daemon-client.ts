// The CLI's (and tests') connection to the daemon: reads daemon.json and the token from the state
// dir, says hello, and offers request/reply plus push events.
import { readFileSync } from 'node:fs';
import { WebSocket } from 'ws';
import {
  LIMITS,
  PROTOCOL_VERSION,
  type Dependency,
  type DependencyListRef,
  type EventMap,
  type EventName,
  type Method,
  type RequestMap,
  type ServerMessage,
} from '../../../protocol/generated/protocol.js';
import { decodeServerMessage, peekEnvelope } from '../protocol/codec.js';
import { discardDependencyList, writeDependencyList } from '../protocol/dependency-list.js';
import { SkyfarmError } from '../errors.js';
import { daemonLockState, readDaemonInfo, type DaemonInfo } from '../config/daemon-lock.js';
import { statePaths } from '../config/state-dir.js';

/** Whether `dependencies` alone take more than `limit` bytes of JSON (a lower bound, no serialising). */
function surelyTooLong(dependencies: Dependency[], limit: number): boolean {
  let bytes = 0;
  for (const dependency of dependencies) {
    bytes += dependency.path.length + 12; // {"path":""},
    if (bytes > limit) return true;
  }
  return false;
}

/** Requests whose dependency list may travel by reference (DependencyListRef). */
const LISTED_METHODS = new Set<Method>(['render.submit', 'project.upload']);

type EventListener = <E extends EventName>(event: E, data: EventMap[E]) => void;

export interface ConnectOptions {
  stateDir: string;
  clientName?: string;
  clientVersion?: string;
  timeoutMs?: number;
  /** Overrides for tests: connect to this port/token instead of the state dir's. */
  port?: number;
  token?: string;
  /**
   * Requests larger than this are refused here, before sending (default: the protocol's limit).
   * Tests raise it to see what the daemon answers an oversized request.
   */
  sendLimitBytes?: number;
}

export class DaemonClient {
  private nextId = 1;
  private readonly pending = new Map<string, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private readonly listeners = new Set<EventListener>();
  private readonly closeListeners = new Set<(reason: string) => void>();

  private constructor(
    private readonly socket: WebSocket,
    readonly daemon: DaemonInfo,
    private readonly stateDir: string,
    private readonly sendLimitBytes: number = LIMITS.maxMessageBytes,
  ) {
    socket.on('message', (data) => this.onMessage(data.toString()));
    socket.on('close', (code, reason) => {
      const why = `connection to the daemon closed (${code}${reason.length ? `: ${reason.toString()}` : ''})`;
      // 1009: the daemon would not even read a message this large (far over the protocol's limit).
      if (code === 1009)
        this.failAll(new SkyfarmError('MESSAGE_TOO_LARGE', `${why}: a request was too large to read`));
      else this.failAll(new SkyfarmError('DAEMON_UNREACHABLE', why));
      for (const listener of this.closeListeners) listener(why);
    });
  }

  /** Ends every request still waiting: none of them can be told apart from the others any more. */
  private failAll(error: SkyfarmError): void {
    const waiters = [...this.pending.values()];
    this.pending.clear();
    for (const { reject } of waiters) reject(error);
  }

  static async connect(options: ConnectOptions): Promise<DaemonClient> {
    const paths = statePaths(options.stateDir);
    const info = readDaemonInfo(paths.daemonInfo);
    const port = options.port ?? info?.port;
    if (port === undefined) {
      throw new SkyfarmError('DAEMON_UNREACHABLE', `no skyfarm daemon is running for ${options.stateDir}`);
    }
    // daemon.json outlives a killed daemon: its port may now be another program's (or another state
    // dir's daemon's). Only a daemon holding the lock is asked.
    if (options.port === undefined && info && daemonLockState(paths.lock) === 'free') {
      throw new SkyfarmError(
        'DAEMON_UNREACHABLE',
        `no skyfarm daemon is running for ${options.stateDir} (the daemon that wrote daemon.json, pid ${info.pid}, is no longer running)`,
      );
    }
    let token = options.token;
    if (token === undefined) {
      try {
        token = readFileSync(paths.token, 'utf8').trim();
      } catch {
        throw new SkyfarmError('DAEMON_UNREACHABLE', `cannot read the daemon token in ${options.stateDir}`);
      }
    }
    const timeoutMs = options.timeoutMs ?? 5000;
    const socket = new WebSocket(`ws://127.0.0.1:${port}/ws`, {
      headers: { Authorization: `Bearer ${token}` },
      handshakeTimeout: timeoutMs,
      maxPayload: 64 * 1024 * 1024,
    });
    const client = await new Promise<DaemonClient>((resolve, reject) => {
      const timer = setTimeout(() => {
        socket.terminate();
        reject(
          new SkyfarmError(
            'DAEMON_UNREACHABLE',
            `the daemon on port ${port} did not answer in ${timeoutMs} ms`,
          ),
        );
      }, timeoutMs);
      socket.once('unexpected-response', (_request, response) => {
        clearTimeout(timer);
        socket.terminate();
        reject(
          new SkyfarmError(
            response.statusCode === 401 ? 'UNAUTHORIZED' : 'DAEMON_UNREACHABLE',
            `the daemon refused the connection (HTTP ${response.statusCode})`,
          ),
        );
      });
      socket.once('error', (error) => {
        clearTimeout(timer);
        reject(
          new SkyfarmError('DAEMON_UNREACHABLE', `cannot reach the daemon on port ${port}: ${error.message}`),
        );
      });
      socket.once('open', () => {
        socket.send(
          JSON.stringify({
            type: 'hello',
            protocol: PROTOCOL_VERSION,
            client: { name: options.clientName ?? 'skyfarm-cli', version: options.clientVersion ?? '0' },
          }),
        );
        socket.once('message', (data) => {
          clearTimeout(timer);
          const decoded = decodeServerMessage(data.toString());
          if (decoded.ok && decoded.message.type === 'welcome') {
            socket.removeAllListeners('error');
            socket.on('error', () => undefined);
            resolve(
              new DaemonClient(
                socket,
                {
                  pid: info?.pid ?? 0,
                  port,
                  version: decoded.message.daemon.version,
                },
                options.stateDir,
                options.sendLimitBytes,
              ),
            );
          } else if (decoded.ok && decoded.message.type === 'error') {
            socket.close();
            reject(new SkyfarmError(decoded.message.code, decoded.message.message));
          } else {
            socket.close();
            reject(new SkyfarmError('BAD_MESSAGE', 'the daemon answered hello with something unexpected'));
          }
        });
      });
    });
    return client;
  }

  private onMessage(text: string): void {
    const decoded = decodeServerMessage(text);
    if (!decoded.ok) {
      // An answer this client cannot read still ends its request; an answer whose request cannot be
      // told ends them all, so nothing waits forever for it. (Garbage and events answer nothing.)
      const why = `unreadable message from the daemon: ${decoded.message} [${decoded.code}]`;
      const waiter = decoded.id !== null ? this.pending.get(decoded.id) : undefined;
      if (waiter && decoded.id !== null) {
        this.pending.delete(decoded.id);
        waiter.reject(new SkyfarmError(decoded.code, why));
      } else if (['reply', 'error'].includes(peekEnvelope(text).type ?? '')) {
        this.failAll(new SkyfarmError(decoded.code, why));
      }
      return;
    }
    const message: ServerMessage = decoded.message;
    if (message.type === 'event') {
      for (const listener of this.listeners) listener(message.event, message.data as never);
      return;
    }
    if (message.type === 'error' && message.id === null) {
      // The daemon could not tell which request it refuses: every waiting one may be it.
      this.failAll(new SkyfarmError(message.code, message.message));
      return;
    }
    if (message.type === 'reply' || message.type === 'error') {
      const waiter = message.id !== null ? this.pending.get(message.id) : undefined;
      if (!waiter || message.id === null) return;
      this.pending.delete(message.id);
      if (message.type === 'reply') waiter.resolve(message.result);
      else waiter.reject(new SkyfarmError(message.code, message.message));
    }
  }

  request<M extends Method>(method: M, params: RequestMap[M]['params']): Promise<RequestMap[M]['result']> {
    const id = String(this.nextId++);
    return new Promise((resolveRequest, rejectRequest) => {
      let resolve: (value: RequestMap[M]['result']) => void = resolveRequest;
      let reject: (error: Error) => void = rejectRequest;
      if (this.socket.readyState !== WebSocket.OPEN) {
        reject(new SkyfarmError('DAEMON_UNREACHABLE', 'not connected to the daemon'));
        return;
      }
      let list: DependencyListRef | undefined;
      const dependencies = (params as { dependencies?: Dependency[] }).dependencies;
      const listed = LISTED_METHODS.has(method) && dependencies !== undefined;
      // A list that cannot fit (each entry is at least `{"path":"…"}`) is not serialised inline first:
      // 100,000 entries make 10 MB of JSON.
      let text =
        listed && surelyTooLong(dependencies, this.sendLimitBytes)
          ? ''
          : JSON.stringify({ type: 'request', id, method, params });
      let size = text === '' ? Infinity : Buffer.byteLength(text);
      if (size > this.sendLimitBytes && listed) {
        // Too many files for one message: the list goes by reference (a file the daemon reads once).
        const { dependencies: _inline, ...rest } = params as { dependencies?: Dependency[] };
        try {
          list = writeDependencyList(this.stateDir, dependencies);
        } catch (error) {
          reject(
            new SkyfarmError(
              'BAD_ARGUMENT',
              `cannot write the dependency list in ${this.stateDir}: ${(error as Error).message}`,
            ),
          );
          return;
        }
        text = JSON.stringify({ type: 'request', id, method, params: { ...rest, dependencyList: list } });
        size = Buffer.byteLength(text);
      }
      if (list) {
        // The daemon deletes a list it read; one it never got (a lost connection) goes here.
        const written = list;
        const [settle, fail] = [resolve, reject];
        resolve = (value) => {
          discardDependencyList(written);
          settle(value);
        };
        reject = (error) => {
          discardDependencyList(written);
          fail(error);
        };
      }
      if (size > this.sendLimitBytes) {
        reject(
          new SkyfarmError(
            'MESSAGE_TOO_LARGE',
            `the ${method} request is ${size} bytes; the daemon reads messages of at most ${LIMITS.maxMessageBytes} bytes`,
          ),
        );
        return;
      }
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.socket.send(text);
    });
  }

  onEvent(listener: EventListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  onClose(listener: (reason: string) => void): () => void {
    this.closeListeners.add(listener);
    return () => this.closeListeners.delete(listener);
  }

  close(): void {
    this.socket.close();
  }
}
