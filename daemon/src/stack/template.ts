// Loads infra/skyfarm.yaml: the text goes to CloudFormation unchanged (it accepts the short-form tags);
// the parsed form (short tags expanded to their long JSON form) is what the daemon and the tests inspect.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML, { type ScalarTag, type CollectionTag } from 'yaml';

/** CloudFormation's hard limit for TemplateBody; larger templates would have to go through S3. */
export const TEMPLATE_BODY_LIMIT = 51_200;

export type TemplateValue =
  string | number | boolean | null | TemplateValue[] | { [key: string]: TemplateValue };

export interface CfnResource {
  Type: string;
  Condition?: string;
  DependsOn?: string | string[];
  Properties?: Record<string, TemplateValue>;
  [key: string]: unknown;
}

export interface CfnTemplate {
  AWSTemplateFormatVersion?: string;
  Description?: string;
  Metadata?: Record<string, TemplateValue>;
  Parameters?: Record<string, Record<string, TemplateValue>>;
  Conditions?: Record<string, TemplateValue>;
  Mappings?: Record<string, TemplateValue>;
  Resources: Record<string, CfnResource>;
  Outputs?: Record<string, { Value: TemplateValue; Condition?: string; Description?: string }>;
}

// Short form → long form, as documented in the intrinsic function reference. `!GetAtt A.B` becomes
// `Fn::GetAtt: [A, B]`; `!Ref X` becomes `Ref: X`; `!Condition C` becomes `Condition: C`.
const SCALAR_FNS = ['Base64', 'GetAZs', 'ImportValue', 'Sub', 'Transform'];
const SEQ_FNS = [
  'And',
  'Cidr',
  'Equals',
  'FindInMap',
  'If',
  'Join',
  'Not',
  'Or',
  'Select',
  'Split',
  'Sub',
  'GetAtt',
];
const MAP_FNS = ['Base64', 'ImportValue', 'Transform', 'GetAZs'];

function cfnTags(): Array<ScalarTag | CollectionTag> {
  const tags: Array<ScalarTag | CollectionTag> = [
    { tag: '!Ref', resolve: (value: string) => ({ Ref: value }) },
    { tag: '!Condition', resolve: (value: string) => ({ Condition: value }) },
    {
      tag: '!GetAtt',
      resolve: (value: string) => {
        const dot = value.indexOf('.');
        return { 'Fn::GetAtt': dot < 0 ? [value] : [value.slice(0, dot), value.slice(dot + 1)] };
      },
    },
  ];
  for (const name of SCALAR_FNS)
    tags.push({ tag: `!${name}`, resolve: (value: string) => ({ [`Fn::${name}`]: value }) });
  for (const [names, collection] of [
    [SEQ_FNS, 'seq'],
    [MAP_FNS, 'map'],
  ] as const) {
    for (const name of names) {
      tags.push({
        tag: `!${name}`,
        collection,
        resolve: (node) => ({ [`Fn::${name}`]: node.toJSON() as unknown }),
      });
    }
  }
  return tags;
}

export function parseTemplate(text: string): CfnTemplate {
  const doc = YAML.parse(text, { customTags: cfnTags(), version: '1.2', maxAliasCount: 0 }) as unknown;
  if (!doc || typeof doc !== 'object' || Array.isArray(doc))
    throw new Error('template is not a YAML mapping');
  const template = doc as CfnTemplate;
  if (!template.Resources || typeof template.Resources !== 'object')
    throw new Error('template has no Resources');
  return template;
}

/** Finds infra/skyfarm.yaml from this module, both in the source tree and in dist/. */
export function defaultTemplatePath(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 8; i++) {
    const candidate = join(dir, 'infra', 'skyfarm.yaml');
    if (existsSync(candidate)) return candidate;
    const parent = dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  throw new Error('infra/skyfarm.yaml not found next to the skyfarm installation');
}

export interface LoadedTemplate {
  path: string;
  body: string;
  template: CfnTemplate;
  /** Parameter names the template declares (a stack created by an older template may lack some). */
  parameterNames: string[];
}

export function loadTemplate(path = defaultTemplatePath()): LoadedTemplate {
  const body = readFileSync(path, 'utf8');
  const template = parseTemplate(body);
  if (Buffer.byteLength(body) > TEMPLATE_BODY_LIMIT) {
    throw new Error(
      `${path} is ${Buffer.byteLength(body)} bytes; CloudFormation accepts at most ${TEMPLATE_BODY_LIMIT}`,
    );
  }
  return { path, body, template, parameterNames: Object.keys(template.Parameters ?? {}) };
}
