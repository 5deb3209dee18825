// Decodes and validates wire messages against the generated protocol schema.
// Both directions live here so the daemon, the CLI client and the tests share one codec.
import { Ajv, type ValidateFunction } from 'ajv';
import {
  LIMITS,
  METHODS,
  EVENTS,
  SCHEMA_DEFINITIONS,
  type ClientMessage,
  type ErrorCode,
  type ServerMessage,
} from '../../../protocol/generated/protocol.js';

export type Decoded<T> =
  { ok: true; message: T } | { ok: false; code: ErrorCode; message: string; id: string | null };

/**
 * The top-level `type`, `id` and `method` of a message that cannot be decoded in full (too large, or
 * malformed after them), found without building the message: an error about it can then name its
 * request. Fields after the first syntax error are not seen.
 */
export interface Envelope {
  type?: string;
  id?: string;
  method?: string;
}

const PEEKED = new Set(['type', 'id', 'method']);

export function peekEnvelope(text: string): Envelope {
  const found: Envelope = {};
  const n = text.length;
  let i = 0;
  const space = () => {
    while (i < n) {
      const c = text.charCodeAt(i);
      if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) break;
      i++;
    }
  };
  // The index just past the string starting at i (a quote), or -1 when it does not end.
  const stringEnd = (start: number): number => {
    let at = start + 1;
    for (;;) {
      const quote = text.indexOf('"', at);
      if (quote < 0) return -1;
      let slashes = 0;
      while (text.charCodeAt(quote - 1 - slashes) === 0x5c) slashes++;
      if (slashes % 2 === 0) return quote + 1;
      at = quote + 1;
    }
  };
  const decodeString = (start: number, end: number): string | undefined => {
    try {
      return JSON.parse(text.slice(start, end)) as string;
    } catch {
      return undefined;
    }
  };
  // Skips one value of any kind; false when the text ends or breaks inside it.
  const skipValue = (): boolean => {
    let depth = 0;
    while (i < n) {
      const c = text.charCodeAt(i);
      if (c === 0x22) {
        const end = stringEnd(i);
        if (end < 0) return false;
        i = end;
        if (depth === 0) return true;
        continue;
      }
      if (c === 0x7b || c === 0x5b) depth++;
      else if (c === 0x7d || c === 0x5d) {
        if (depth === 0) return true; // the end of the enclosing object: a literal ended
        depth--;
        if (depth === 0) {
          i++;
          return true;
        }
      } else if (c === 0x2c && depth === 0) return true;
      i++;
    }
    return depth === 0;
  };
  space();
  if (text.charCodeAt(i) !== 0x7b) return found;
  i++;
  while (i < n) {
    space();
    if (text.charCodeAt(i) !== 0x22) return found;
    const keyEnd = stringEnd(i);
    if (keyEnd < 0) return found;
    const key = decodeString(i, keyEnd);
    i = keyEnd;
    space();
    if (text.charCodeAt(i) !== 0x3a) return found;
    i++;
    space();
    if (key !== undefined && PEEKED.has(key) && text.charCodeAt(i) === 0x22) {
      const end = stringEnd(i);
      if (end < 0) return found;
      const value = decodeString(i, end);
      if (value !== undefined && found[key as keyof Envelope] === undefined)
        found[key as keyof Envelope] = value;
      i = end;
    } else if (!skipValue()) return found;
    if (found.type !== undefined && found.id !== undefined && found.method !== undefined) return found;
    space();
    if (text.charCodeAt(i) !== 0x2c) return found;
    i++;
  }
  return found;
}

const ajv = new Ajv({ allErrors: false, strict: false });
ajv.addSchema({ $id: 'skyfarm', definitions: SCHEMA_DEFINITIONS });

const validators = new Map<string, ValidateFunction>();
function validator(key: string): ValidateFunction {
  let fn = validators.get(key);
  if (!fn) {
    fn = ajv.getSchema(`skyfarm#/definitions/${key}`);
    if (!fn) throw new Error(`protocol has no schema ${key}`);
    validators.set(key, fn);
  }
  return fn;
}

const methodSet = new Set<string>(METHODS);
const eventSet = new Set<string>(EVENTS);

function describe(fn: ValidateFunction, where: string): string {
  const first = fn.errors?.[0];
  if (!first) return `${where} is invalid`;
  const path = first.instancePath ? `${where}${first.instancePath.replaceAll('/', '.')}` : where;
  if (first.keyword === 'additionalProperties') {
    return `${path} has unknown field "${String((first.params as { additionalProperty?: string }).additionalProperty)}"`;
  }
  if (first.keyword === 'enum') {
    return `${path} must be one of ${(first.params as { allowedValues?: unknown[] }).allowedValues?.map((v) => JSON.stringify(v)).join(', ')}`;
  }
  return `${path} ${first.message ?? 'is invalid'}`;
}

function parseObject(raw: string | Buffer): Decoded<Record<string, unknown>> {
  const size = typeof raw === 'string' ? Buffer.byteLength(raw) : raw.length;
  if (size > LIMITS.maxMessageBytes) {
    // Read the id anyway, so the error ends that request instead of leaving it waiting.
    const envelope = peekEnvelope(typeof raw === 'string' ? raw : raw.toString('utf8'));
    const what = envelope.method
      ? `${envelope.method.slice(0, 64)} ${envelope.type ?? 'message'}`
      : 'message';
    return {
      ok: false,
      code: 'MESSAGE_TOO_LARGE',
      message: `${what} of ${size} bytes exceeds the limit of ${LIMITS.maxMessageBytes} bytes`,
      id: usableId(envelope.id),
    };
  }
  const text = typeof raw === 'string' ? raw : raw.toString('utf8');
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    return {
      ok: false,
      code: 'BAD_MESSAGE',
      message: `not valid JSON: ${(error as Error).message}`,
      id: usableId(peekEnvelope(text).id),
    };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { ok: false, code: 'BAD_MESSAGE', message: 'a message must be a JSON object', id: null };
  }
  return { ok: true, message: value as Record<string, unknown> };
}

function usableId(id: unknown): string | null {
  return typeof id === 'string' && id.length > 0 && id.length <= 64 ? id : null;
}

function requestIdOf(value: Record<string, unknown>): string | null {
  return usableId(value['id']);
}

function check<T>(key: string, value: unknown, where: string, id: string | null): Decoded<T> {
  const fn = validator(key);
  if (fn(value)) return { ok: true, message: value as T };
  return { ok: false, code: 'INVALID_MESSAGE', message: describe(fn, where), id };
}

/** Checks a value against one schema definition (e.g. a line of a dependency list); null when it matches. */
export function checkDefinition(key: string, value: unknown, where: string): string | null {
  const fn = validator(key);
  return fn(value) ? null : describe(fn, where);
}

/** Decodes a message sent by a client (add-on, CLI) to the daemon. */
export function decodeClientMessage(raw: string | Buffer): Decoded<ClientMessage> {
  const parsed = parseObject(raw);
  if (!parsed.ok) return parsed;
  const value = parsed.message;
  const type = value['type'];
  const id = requestIdOf(value);
  if (typeof type !== 'string')
    return { ok: false, code: 'INVALID_MESSAGE', message: 'message.type must be a string', id };
  if (type === 'hello') return check('message.hello', value, 'hello', null);
  if (type !== 'request')
    return { ok: false, code: 'UNKNOWN_TYPE', message: `unknown message type "${type.slice(0, 64)}"`, id };
  const envelope = check<Record<string, unknown>>('message.request', { params: {}, ...value }, 'request', id);
  if (!envelope.ok) return envelope;
  const method = String(envelope.message['method']);
  if (!methodSet.has(method)) {
    return { ok: false, code: 'UNKNOWN_METHOD', message: `unknown method "${method}"`, id };
  }
  const params = value['params'] ?? {};
  const checked = check(`params.${method}`, params, 'params', id);
  if (!checked.ok) return checked;
  return { ok: true, message: { type: 'request', id: id as string, method, params } as ClientMessage };
}

/** Decodes a message sent by the daemon to a client. */
export function decodeServerMessage(raw: string | Buffer): Decoded<ServerMessage> {
  const parsed = parseObject(raw);
  if (!parsed.ok) return parsed;
  const value = parsed.message;
  const type = value['type'];
  const id = requestIdOf(value);
  switch (type) {
    case 'welcome':
      return check('message.welcome', value, 'welcome', null);
    case 'error':
      return check('message.error', value, 'error', id);
    case 'reply': {
      const envelope = check<Record<string, unknown>>('message.reply', value, 'reply', id);
      if (!envelope.ok) return envelope;
      const method = String(value['method']);
      if (!methodSet.has(method))
        return { ok: false, code: 'UNKNOWN_METHOD', message: `unknown method "${method}"`, id };
      const checked = check(`result.${method}`, value['result'], 'result', id);
      return checked.ok ? { ok: true, message: value as unknown as ServerMessage } : checked;
    }
    case 'event': {
      const envelope = check<Record<string, unknown>>('message.event', value, 'event', null);
      if (!envelope.ok) return envelope;
      const event = String(value['event']);
      if (!eventSet.has(event))
        return { ok: false, code: 'UNKNOWN_TYPE', message: `unknown event "${event}"`, id: null };
      const checked = check(`event.${event}`, value['data'], 'data', null);
      return checked.ok ? { ok: true, message: value as unknown as ServerMessage } : checked;
    }
    default:
      return typeof type === 'string'
        ? { ok: false, code: 'UNKNOWN_TYPE', message: `unknown message type "${type.slice(0, 64)}"`, id }
        : { ok: false, code: 'INVALID_MESSAGE', message: 'message.type must be a string', id };
  }
}
