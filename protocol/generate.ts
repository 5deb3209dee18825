// Generates the TypeScript and Python sides of the protocol from protocol/schema.json.
// `--check` exits 1 when a committed generated file differs from what would be generated.
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

type JsonSchema = {
  $ref?: string;
  type?: string | string[];
  enum?: unknown[];
  const?: unknown;
  properties?: Record<string, JsonSchema>;
  required?: string[];
  additionalProperties?: boolean | JsonSchema;
  items?: JsonSchema;
  [key: string]: unknown;
};

interface ProtocolSource {
  protocolVersion: number;
  minProtocolVersion: number;
  limits: Record<string, number>;
  errorCodes: Record<string, string>;
  definitions: Record<string, JsonSchema>;
  client: Record<string, JsonSchema>;
  requests: Record<string, { params: JsonSchema; result: JsonSchema }>;
  events: Record<string, JsonSchema>;
}

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const source = JSON.parse(readFileSync(join(root, 'protocol/schema.json'), 'utf8')) as ProtocolSource;

const pascal = (name: string): string =>
  name
    .split(/[^A-Za-z0-9]+/)
    .filter(Boolean)
    .map((part) => part[0]!.toUpperCase() + part.slice(1))
    .join('');

const requestIdSchema: JsonSchema = { type: 'string', minLength: 1, maxLength: 64 };

/** Envelope schemas shared by both languages: every message on the wire is one of these. */
function envelopeDefinitions(): Record<string, JsonSchema> {
  const defs: Record<string, JsonSchema> = {};
  defs['hello'] = source.client['hello']!;
  defs['welcome'] = {
    type: 'object',
    required: ['type', 'protocol', 'minProtocol', 'daemon'],
    additionalProperties: false,
    properties: {
      type: { const: 'welcome' },
      protocol: { type: 'integer', minimum: 0 },
      minProtocol: { type: 'integer', minimum: 0 },
      daemon: {
        type: 'object',
        required: ['name', 'version'],
        additionalProperties: false,
        properties: { name: { type: 'string' }, version: { type: 'string' } },
      },
    },
  };
  defs['request'] = {
    type: 'object',
    required: ['type', 'id', 'method'],
    additionalProperties: false,
    properties: {
      type: { const: 'request' },
      id: requestIdSchema,
      method: { type: 'string', maxLength: 64 },
      params: { type: 'object' },
    },
  };
  defs['reply'] = {
    type: 'object',
    required: ['type', 'id', 'method', 'result'],
    additionalProperties: false,
    properties: {
      type: { const: 'reply' },
      id: requestIdSchema,
      method: { type: 'string', maxLength: 64 },
      result: { type: 'object' },
    },
  };
  defs['error'] = {
    type: 'object',
    required: ['type', 'id', 'code', 'message'],
    additionalProperties: false,
    properties: {
      type: { const: 'error' },
      id: { type: ['string', 'null'], maxLength: 64 },
      code: { enum: Object.keys(source.errorCodes) },
      message: { type: 'string', maxLength: 8192 },
    },
  };
  defs['event'] = {
    type: 'object',
    required: ['type', 'event', 'data'],
    additionalProperties: false,
    properties: {
      type: { const: 'event' },
      event: { type: 'string', maxLength: 64 },
      data: { type: 'object' },
    },
  };
  return defs;
}

/** All definitions in one flat table: named types, envelopes, per-method params/results, per-event data. */
function allDefinitions(): Record<string, JsonSchema> {
  const defs: Record<string, JsonSchema> = { ...source.definitions };
  for (const [name, schema] of Object.entries(envelopeDefinitions())) defs[`message.${name}`] = schema;
  for (const [method, { params, result }] of Object.entries(source.requests)) {
    defs[`params.${method}`] = params;
    defs[`result.${method}`] = result;
  }
  for (const [event, schema] of Object.entries(source.events)) defs[`event.${event}`] = schema;
  return defs;
}

function tsType(schema: JsonSchema, indent: string): string {
  if (schema.$ref) return pascal(schema.$ref.replace('#/definitions/', ''));
  if (schema.const !== undefined) return JSON.stringify(schema.const);
  if (schema.enum) return schema.enum.map((v) => JSON.stringify(v)).join(' | ');
  const types = Array.isArray(schema.type) ? schema.type : schema.type ? [schema.type] : [];
  if (types.length > 1) return types.map((t) => tsType({ ...schema, type: t }, indent)).join(' | ');
  switch (types[0]) {
    case 'string':
      return 'string';
    case 'integer':
    case 'number':
      return 'number';
    case 'boolean':
      return 'boolean';
    case 'null':
      return 'null';
    case 'array':
      return `Array<${schema.items ? tsType(schema.items, indent) : 'unknown'}>`;
    case 'object': {
      const props = schema.properties ?? {};
      const required = new Set(schema.required ?? []);
      const inner = indent + '  ';
      const lines = Object.entries(props).map(
        ([key, value]) => `${inner}${key}${required.has(key) ? '' : '?'}: ${tsType(value, inner)};`,
      );
      if (typeof schema.additionalProperties === 'object') {
        lines.push(`${inner}[key: string]: ${tsType(schema.additionalProperties, inner)};`);
      } else if (schema.additionalProperties !== false && lines.length === 0) {
        return 'Record<string, unknown>';
      }
      return lines.length ? `{\n${lines.join('\n')}\n${indent}}` : 'Record<string, never>';
    }
    default:
      return 'unknown';
  }
}

function generateTypeScript(): string {
  const out: string[] = [
    '// Generated by protocol/generate.ts from protocol/schema.json. Do not edit by hand.',
    '',
    `export const PROTOCOL_VERSION = ${source.protocolVersion};`,
    `export const MIN_PROTOCOL_VERSION = ${source.minProtocolVersion};`,
    `export const LIMITS = ${JSON.stringify(source.limits)} as const;`,
    '',
    `export const ERROR_CODES = ${JSON.stringify(source.errorCodes, null, 2)} as const;`,
    'export type ErrorCode = keyof typeof ERROR_CODES;',
    '',
  ];
  for (const [name, schema] of Object.entries(source.definitions)) {
    out.push(`export type ${pascal(name)} = ${tsType(schema, '')};`, '');
  }
  out.push('export interface RequestMap {');
  for (const method of Object.keys(source.requests)) {
    out.push(`  '${method}': { params: ${pascal(method)}Params; result: ${pascal(method)}Result };`);
  }
  out.push('}', '');
  for (const [method, { params, result }] of Object.entries(source.requests)) {
    out.push(`export type ${pascal(method)}Params = ${tsType(params, '')};`);
    out.push(`export type ${pascal(method)}Result = ${tsType(result, '')};`, '');
  }
  out.push('export interface EventMap {');
  for (const [event, schema] of Object.entries(source.events))
    out.push(`  '${event}': ${tsType(schema, '  ')};`);
  out.push('}', '');
  out.push(
    'export type Method = keyof RequestMap;',
    'export type EventName = keyof EventMap;',
    `export const METHODS = ${JSON.stringify(Object.keys(source.requests))} as const;`,
    `export const EVENTS = ${JSON.stringify(Object.keys(source.events))} as const;`,
    '',
    `export type Hello = ${tsType(source.client['hello']!, '')};`,
    `export type Welcome = ${tsType(envelopeDefinitions()['welcome']!, '')};`,
    'export type RequestMessage<M extends Method = Method> = { type: "request"; id: string; method: M; params: RequestMap[M]["params"] };',
    'export type ReplyMessage<M extends Method = Method> = { type: "reply"; id: string; method: M; result: RequestMap[M]["result"] };',
    'export type ErrorMessage = { type: "error"; id: string | null; code: ErrorCode; message: string };',
    'export type EventMessage<E extends EventName = EventName> = { type: "event"; event: E; data: EventMap[E] };',
    'export type ClientMessage = Hello | RequestMessage;',
    'export type ServerMessage = Welcome | ReplyMessage | ErrorMessage | EventMessage;',
    '',
    '/** Flat table of every schema, keyed as message.<type>, params.<method>, result.<method>, event.<name> or a definition name. */',
    `export const SCHEMA_DEFINITIONS: Record<string, unknown> = ${JSON.stringify(allDefinitions(), null, 2)};`,
    '',
  );
  return out.join('\n');
}

function generatePython(): string {
  const pyLiteral = (value: unknown): string => JSON.stringify(JSON.stringify(value));
  return [
    '# Generated by protocol/generate.ts from protocol/schema.json. Do not edit by hand.',
    '"""skyfarm wire protocol: constants and schemas shared with the daemon."""',
    '',
    'import json',
    '',
    `PROTOCOL_VERSION = ${source.protocolVersion}`,
    `MIN_PROTOCOL_VERSION = ${source.minProtocolVersion}`,
    `MAX_MESSAGE_BYTES = ${source.limits['maxMessageBytes']}`,
    `LIMITS = json.loads(${pyLiteral(source.limits)})`,
    '',
    `ERROR_CODES = json.loads(${pyLiteral(source.errorCodes)})`,
    `JOB_STATES = tuple(json.loads(${pyLiteral(source.definitions['JobState']!.enum)}))`,
    `FINISHED_JOB_STATES = ("done", "failed", "canceled")`,
    `METHODS = tuple(json.loads(${pyLiteral(Object.keys(source.requests))}))`,
    `EVENTS = tuple(json.loads(${pyLiteral(Object.keys(source.events))}))`,
    '',
    '# Flat table of every schema, keyed as message.<type>, params.<method>, result.<method>,',
    '# event.<name> or a definition name.',
    `SCHEMA_DEFINITIONS = json.loads(${pyLiteral(allDefinitions())})`,
    '',
  ].join('\n');
}

const outputs: Array<[string, string]> = [
  ['protocol/generated/protocol.ts', generateTypeScript()],
  ['blender-addon/skyfarm/protocol.py', generatePython()],
];

const check = process.argv.includes('--check');
let stale = false;
for (const [path, text] of outputs) {
  const full = join(root, path);
  let current: string | undefined;
  try {
    current = readFileSync(full, 'utf8');
  } catch {
    current = undefined;
  }
  if (check) {
    if (current !== text) {
      stale = true;
      console.error(
        `${relative(root, full)} is stale: run \`npm run protocol:generate\` and commit the result.`,
      );
    }
  } else if (current !== text) {
    mkdirSync(dirname(full), { recursive: true });
    writeFileSync(full, text);
    console.log(`wrote ${path}`);
  }
}
if (stale) process.exit(1);
