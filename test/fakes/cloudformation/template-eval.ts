// A small CloudFormation template evaluator shared by the fake endpoint and the template tests:
// parameter validation, conditions, intrinsic functions (Ref, GetAtt, Sub, If, Equals, Not, And, Or,
// Select, GetAZs, Join, Split, Base64) and a static reference checker. Physical ids and attributes are
// fake but shaped like the real ones (documented Ref/GetAtt return values per resource type).
import type { CfnTemplate, TemplateValue } from '../../../daemon/src/stack/template.js';

export type Value = TemplateValue | undefined;
export const NO_VALUE = Symbol('AWS::NoValue');

export interface Scope {
  region: string;
  accountId: string;
  partition: string;
  stackName: string;
  stackId: string;
  params: Record<string, string | string[]>;
  conditions: Record<string, boolean>;
  physicalIds: Record<string, string>;
  resourceTypes: Record<string, string>;
}

export class TemplateError extends Error {}

const PSEUDO = [
  'AWS::Region',
  'AWS::AccountId',
  'AWS::Partition',
  'AWS::StackName',
  'AWS::StackId',
  'AWS::URLSuffix',
  'AWS::NoValue',
  'AWS::NotificationARNs',
];

// GetAtt attributes this fake knows, per resource type (a subset of the documented return values).
export const ATTRIBUTES: Record<string, Record<string, (s: Scope, logicalId: string) => string>> = {
  'AWS::S3::Bucket': {
    Arn: (s, id) => `arn:${s.partition}:s3:::${phys(s, id)}`,
    DomainName: (s, id) => `${phys(s, id)}.s3.amazonaws.com`,
    RegionalDomainName: (s, id) => `${phys(s, id)}.s3.${s.region}.amazonaws.com`,
  },
  'AWS::IAM::Role': {
    Arn: (s, id) => `arn:${s.partition}:iam::${s.accountId}:role/${phys(s, id)}`,
    RoleId: (s, id) => `AROA${hash(phys(s, id)).toUpperCase().slice(0, 16)}`,
  },
  'AWS::IAM::InstanceProfile': {
    Arn: (s, id) => `arn:${s.partition}:iam::${s.accountId}:instance-profile/${phys(s, id)}`,
  },
  'AWS::ECR::Repository': {
    Arn: (s, id) => `arn:${s.partition}:ecr:${s.region}:${s.accountId}:repository/${phys(s, id)}`,
    RepositoryUri: (s, id) => `${s.accountId}.dkr.ecr.${s.region}.amazonaws.com/${phys(s, id)}`,
  },
  'AWS::Logs::LogGroup': {
    // The documented value really ends in ":*".
    Arn: (s, id) => `arn:${s.partition}:logs:${s.region}:${s.accountId}:log-group:${phys(s, id)}:*`,
  },
  'AWS::EFS::FileSystem': {
    Arn: (s, id) =>
      `arn:${s.partition}:elasticfilesystem:${s.region}:${s.accountId}:file-system/${phys(s, id)}`,
    FileSystemId: (s, id) => phys(s, id),
  },
  'AWS::CodeBuild::Project': {
    Arn: (s, id) => `arn:${s.partition}:codebuild:${s.region}:${s.accountId}:project/${phys(s, id)}`,
  },
  'AWS::EC2::SecurityGroup': { GroupId: (s, id) => phys(s, id), VpcId: () => 'vpc-0fake' },
  'AWS::EC2::VPC': { CidrBlock: () => '10.42.0.0/16', DefaultSecurityGroup: () => 'sg-0default' },
  'AWS::EC2::Subnet': { AvailabilityZone: (s) => `${s.region}a`, SubnetId: (s, id) => phys(s, id) },
  'AWS::Batch::ComputeEnvironment': { ComputeEnvironmentArn: (s, id) => phys(s, id) },
  'AWS::Batch::JobQueue': { JobQueueArn: (s, id) => phys(s, id) },
};

function phys(s: Scope, logicalId: string): string {
  const id = s.physicalIds[logicalId];
  if (id === undefined) throw new TemplateError(`resource ${logicalId} has no physical id yet`);
  return id;
}

export function hash(text: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193) >>> 0;
  let h2 = h ^ 0x9e3779b9;
  for (let i = text.length - 1; i >= 0; i--) h2 = Math.imul(h2 ^ text.charCodeAt(i), 0x01000193) >>> 0;
  return (h.toString(16).padStart(8, '0') + h2.toString(16).padStart(8, '0')).slice(0, 16);
}

/** The documented shape of `Ref` for each type; `props` are the resolved properties. */
export function makePhysicalId(
  type: string,
  logicalId: string,
  props: Record<string, unknown>,
  s: Scope,
): string {
  const h = hash(`${s.stackId}/${logicalId}`);
  const named = (key: string, fallback: string) =>
    typeof props[key] === 'string' ? (props[key] as string) : fallback;
  const arn = (service: string, resource: string) =>
    `arn:${s.partition}:${service}:${s.region}:${s.accountId}:${resource}`;
  const generated = `${s.stackName}-${logicalId}-${h.slice(0, 12).toUpperCase()}`;
  switch (type) {
    case 'AWS::EC2::VPC':
      return `vpc-${h}`;
    case 'AWS::EC2::Subnet':
      return `subnet-${h}`;
    case 'AWS::EC2::InternetGateway':
      return `igw-${h}`;
    case 'AWS::EC2::RouteTable':
      return `rtb-${h}`;
    case 'AWS::EC2::SecurityGroup':
      return `sg-${h}`;
    case 'AWS::EC2::SecurityGroupIngress':
      return `sgr-${h}`;
    case 'AWS::EC2::VPCEndpoint':
      return `vpce-${h}`;
    case 'AWS::EC2::SubnetRouteTableAssociation':
      return `rtbassoc-${h}`;
    case 'AWS::EFS::FileSystem':
      return `fs-${h}`;
    case 'AWS::EFS::MountTarget':
      return `fsmt-${h}`;
    case 'AWS::S3::Bucket':
      return named('BucketName', `${s.stackName}-bucket-${h.slice(0, 12)}`.toLowerCase());
    case 'AWS::ECR::Repository':
      return named('RepositoryName', `${s.stackName}-repository-${h.slice(0, 12)}`.toLowerCase());
    case 'AWS::Logs::LogGroup':
      return named('LogGroupName', generated);
    case 'AWS::CodeBuild::Project':
      return named('Name', generated);
    case 'AWS::IAM::Role':
    case 'AWS::IAM::InstanceProfile':
      return generated;
    case 'AWS::Batch::ComputeEnvironment':
      return arn('batch', `compute-environment/${named('ComputeEnvironmentName', generated)}`);
    case 'AWS::Batch::JobQueue':
      return arn('batch', `job-queue/${named('JobQueueName', generated)}`);
    case 'AWS::Batch::JobDefinition':
      return arn('batch', `job-definition/${named('JobDefinitionName', generated)}:1`);
    default:
      return generated;
  }
}

// ------------------------------------------------------------------------------------------------
// Parameters and conditions
// ------------------------------------------------------------------------------------------------

/** Applies defaults and constraints the way CloudFormation validates parameters (ValidationError text). */
export function resolveParameters(
  template: CfnTemplate,
  given: Record<string, string>,
): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  const declared = template.Parameters ?? {};
  for (const key of Object.keys(given)) {
    if (!(key in declared)) throw new TemplateError(`Parameters: [${key}] do not exist in the template`);
  }
  const missing = Object.keys(declared).filter(
    (k) => given[k] === undefined && declared[k]?.Default === undefined,
  );
  if (missing.length) throw new TemplateError(`Parameters: [${missing.join(', ')}] must have values`);
  for (const [name, decl] of Object.entries(declared)) {
    const raw = given[name] ?? String(decl.Default);
    const type = String(decl.Type);
    const fail = (what: string) => {
      throw new TemplateError(`Parameter '${name}' ${what}`);
    };
    if (type === 'Number') {
      if (!/^-?\d+(\.\d+)?$/.test(raw)) fail('must be a number');
      const n = Number(raw);
      if (typeof decl.MinValue === 'number' && n < decl.MinValue)
        fail(`must be a number not less than ${decl.MinValue}`);
      if (typeof decl.MaxValue === 'number' && n > decl.MaxValue)
        fail(`must be a number not greater than ${decl.MaxValue}`);
    }
    if (typeof decl.MinLength === 'number' && raw.length < decl.MinLength)
      fail(`must contain at least ${decl.MinLength} characters`);
    if (typeof decl.MaxLength === 'number' && raw.length > decl.MaxLength)
      fail(`must contain at most ${decl.MaxLength} characters`);
    if (typeof decl.AllowedPattern === 'string' && !new RegExp(`^(?:${decl.AllowedPattern})$`).test(raw)) {
      fail(
        `failed to satisfy constraint: ${typeof decl.ConstraintDescription === 'string' ? decl.ConstraintDescription : `Malformed input-Parameter ${name} must match pattern ${decl.AllowedPattern}`}`,
      );
    }
    if (Array.isArray(decl.AllowedValues) && !decl.AllowedValues.map(String).includes(raw))
      fail('must be one of AllowedValues');
    out[name] =
      type === 'CommaDelimitedList' || type.startsWith('List<') ? raw.split(',').map((v) => v.trim()) : raw;
  }
  return out;
}

export function evaluateConditions(
  template: CfnTemplate,
  base: Omit<Scope, 'conditions'>,
): Record<string, boolean> {
  const conditions: Record<string, boolean> = {};
  const pending = new Set<string>();
  const scope: Scope = { ...base, conditions };
  const evalCondition = (name: string): boolean => {
    if (name in conditions) return conditions[name] as boolean;
    const body = template.Conditions?.[name];
    if (body === undefined) throw new TemplateError(`Unresolved condition ${name}`);
    if (pending.has(name)) throw new TemplateError(`Circular condition ${name}`);
    pending.add(name);
    const value = resolve(body, scope, evalCondition);
    pending.delete(name);
    if (typeof value !== 'boolean') throw new TemplateError(`Condition ${name} is not a boolean`);
    conditions[name] = value;
    return value;
  };
  for (const name of Object.keys(template.Conditions ?? {})) evalCondition(name);
  return conditions;
}

/** Logical ids of the resources the stack will have, in template order. */
export function includedResources(template: CfnTemplate, conditions: Record<string, boolean>): string[] {
  return Object.entries(template.Resources)
    .filter(([, r]) => r.Condition === undefined || conditions[r.Condition] === true)
    .map(([id]) => id);
}

// ------------------------------------------------------------------------------------------------
// Intrinsic functions
// ------------------------------------------------------------------------------------------------

function isObject(v: unknown): v is Record<string, Value> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function intrinsic(v: Record<string, Value>): [string, Value] | undefined {
  const keys = Object.keys(v);
  if (keys.length !== 1) return undefined;
  const key = keys[0] as string;
  if (key === 'Ref' || key === 'Condition' || key.startsWith('Fn::')) return [key, v[key]];
  return undefined;
}

function refValue(name: string, s: Scope): Value | typeof NO_VALUE {
  switch (name) {
    case 'AWS::Region':
      return s.region;
    case 'AWS::AccountId':
      return s.accountId;
    case 'AWS::Partition':
      return s.partition;
    case 'AWS::StackName':
      return s.stackName;
    case 'AWS::StackId':
      return s.stackId;
    case 'AWS::URLSuffix':
      return 'amazonaws.com';
    case 'AWS::NoValue':
      return NO_VALUE;
    case 'AWS::NotificationARNs':
      return [];
  }
  if (name in s.params) return s.params[name] as string | string[];
  if (name in s.physicalIds) return s.physicalIds[name] as string;
  throw new TemplateError(`Unresolved reference ${name}`);
}

function getAtt(logicalId: string, attr: string, s: Scope): string {
  const type = s.resourceTypes[logicalId];
  if (!type) throw new TemplateError(`GetAtt: unknown resource ${logicalId}`);
  const fn = ATTRIBUTES[type]?.[attr];
  if (!fn) throw new TemplateError(`GetAtt: ${type} has no attribute ${attr} known to the fake`);
  return fn(s, logicalId);
}

function substitute(text: string, vars: Record<string, Value>, s: Scope): string {
  return text.replace(/\$\{(!?)([^}]+)\}/g, (_m, bang: string, name: string) => {
    if (bang) return '${' + name + '}';
    if (name in vars) return String(vars[name]);
    const dot = name.indexOf('.');
    if (dot > 0 && !name.startsWith('AWS::')) return getAtt(name.slice(0, dot), name.slice(dot + 1), s);
    const value = refValue(name, s);
    if (typeof value !== 'string') throw new TemplateError(`Sub: \${${name}} is not a string`);
    return value;
  });
}

export function resolve(
  value: Value,
  s: Scope,
  condition: (name: string) => boolean = (n) => cond(n, s),
): Value {
  const r = (v: Value): Value => resolve(v, s, condition);
  if (Array.isArray(value)) {
    return value
      .map((item) => r(item))
      .filter((item) => (item as unknown) !== NO_VALUE) as Value[] as TemplateValue[];
  }
  if (!isObject(value)) return value;
  const fn = intrinsic(value);
  if (!fn) {
    const out: Record<string, TemplateValue> = {};
    for (const [k, v] of Object.entries(value)) {
      const resolved = r(v);
      if ((resolved as unknown) !== NO_VALUE && resolved !== undefined) out[k] = resolved;
    }
    return out;
  }
  const [name, arg] = fn;
  const list = (): Value[] => {
    if (!Array.isArray(arg)) throw new TemplateError(`${name} needs a list`);
    return arg;
  };
  switch (name) {
    case 'Ref':
      return refValue(String(arg), s) as Value;
    case 'Condition':
      return condition(String(arg));
    case 'Fn::GetAtt': {
      const [id, attr] = list() as string[];
      return getAtt(String(id), String(attr), s);
    }
    case 'Fn::Sub': {
      if (typeof arg === 'string') return substitute(arg, {}, s);
      const [text, vars] = list();
      const resolvedVars = isObject(vars) ? (r(vars) as Record<string, Value>) : {};
      return substitute(String(text), resolvedVars, s);
    }
    case 'Fn::If': {
      const [c, yes, no] = list();
      return condition(String(c)) ? r(yes) : r(no);
    }
    case 'Fn::Equals': {
      const [a, b] = list();
      return JSON.stringify(r(a)) === JSON.stringify(r(b));
    }
    case 'Fn::Not': {
      const [a] = list();
      const v = r(a);
      if (typeof v !== 'boolean') throw new TemplateError('Fn::Not needs a condition');
      return !v;
    }
    case 'Fn::And':
      return list().every((v) => r(v) === true);
    case 'Fn::Or':
      return list().some((v) => r(v) === true);
    case 'Fn::Select': {
      const [index, items] = list();
      const arr = r(items);
      if (!Array.isArray(arr)) throw new TemplateError('Fn::Select needs a list');
      const item = arr[Number(r(index))];
      if (item === undefined) throw new TemplateError(`Fn::Select index ${String(index)} out of range`);
      return item;
    }
    case 'Fn::GetAZs': {
      const region = r(arg) || s.region;
      return [`${String(region)}a`, `${String(region)}b`, `${String(region)}c`];
    }
    case 'Fn::Join': {
      const [sep, items] = list();
      const arr = r(items);
      if (!Array.isArray(arr)) throw new TemplateError('Fn::Join needs a list');
      return arr.map(String).join(String(sep));
    }
    case 'Fn::Split': {
      const [sep, text] = list();
      return String(r(text)).split(String(sep));
    }
    case 'Fn::Base64':
      return Buffer.from(String(r(arg))).toString('base64');
    default:
      throw new TemplateError(`the fake does not implement ${name}`);
  }
}

function cond(name: string, s: Scope): boolean {
  const v = s.conditions[name];
  if (v === undefined) throw new TemplateError(`Unresolved condition ${name}`);
  return v;
}

// ------------------------------------------------------------------------------------------------
// Static checks (what CloudFormation rejects at CreateStack / CreateChangeSet time)
// ------------------------------------------------------------------------------------------------

export interface Reference {
  kind: 'Ref' | 'GetAtt' | 'Sub' | 'DependsOn' | 'Condition';
  from: string;
  target: string;
  attribute?: string;
  /** Conditions known true where the reference sits (inside the true branch of Fn::If). */
  guards: string[];
}

/** Every reference in the template, with where it comes from. */
export function collectReferences(template: CfnTemplate): Reference[] {
  const refs: Reference[] = [];
  const walk = (v: unknown, from: string, guards: string[]) => {
    if (Array.isArray(v)) return v.forEach((x) => walk(x, from, guards));
    if (!isObject(v)) return;
    const fn = intrinsic(v);
    if (!fn) return Object.values(v).forEach((x) => walk(x, from, guards));
    const [name, arg] = fn;
    if (name === 'Ref') refs.push({ kind: 'Ref', from, target: String(arg), guards });
    else if (name === 'Condition') refs.push({ kind: 'Condition', from, target: String(arg), guards });
    else if (name === 'Fn::GetAtt' && Array.isArray(arg)) {
      refs.push({ kind: 'GetAtt', from, target: String(arg[0]), attribute: String(arg[1]), guards });
    } else if (name === 'Fn::Sub') {
      const [text, vars] =
        typeof arg === 'string' ? [arg, {}] : Array.isArray(arg) ? [String(arg[0]), arg[1]] : ['', {}];
      const local = isObject(vars) ? Object.keys(vars) : [];
      for (const m of String(text).matchAll(/\$\{(!?)([^}]+)\}/g)) {
        const [, bang, ref] = m as unknown as [string, string, string];
        if (bang || local.includes(ref)) continue;
        const dot = ref.indexOf('.');
        if (dot > 0 && !ref.startsWith('AWS::')) {
          refs.push({ kind: 'Sub', from, target: ref.slice(0, dot), attribute: ref.slice(dot + 1), guards });
        } else refs.push({ kind: 'Sub', from, target: ref, guards });
      }
      if (isObject(vars)) walk(vars, from, guards);
    } else if (name === 'Fn::If' && Array.isArray(arg)) {
      const [c, yes, no] = arg;
      refs.push({ kind: 'Condition', from, target: String(c), guards });
      walk(yes, from, [...guards, String(c)]);
      walk(no, from, guards);
    } else walk(arg, from, guards);
  };
  for (const [id, res] of Object.entries(template.Resources)) {
    const guards = res.Condition ? [res.Condition] : [];
    if (res.Condition) refs.push({ kind: 'Condition', from: id, target: res.Condition, guards: [] });
    for (const dep of [res.DependsOn ?? []].flat())
      refs.push({ kind: 'DependsOn', from: id, target: dep, guards });
    walk(res.Properties, id, guards);
  }
  for (const [id, out] of Object.entries(template.Outputs ?? {})) {
    const guards = out.Condition ? [out.Condition] : [];
    if (out.Condition)
      refs.push({ kind: 'Condition', from: `Outputs.${id}`, target: out.Condition, guards: [] });
    walk(out.Value, `Outputs.${id}`, guards);
  }
  for (const [id, body] of Object.entries(template.Conditions ?? {})) walk(body, `Conditions.${id}`, []);
  return refs;
}

/** Problems CloudFormation would report as template format errors; empty when the template is sound. */
export function checkTemplate(template: CfnTemplate): string[] {
  const problems: string[] = [];
  const params = new Set(Object.keys(template.Parameters ?? {}));
  const conditions = new Set(Object.keys(template.Conditions ?? {}));
  const resources = template.Resources;
  for (const ref of collectReferences(template)) {
    const where = `${ref.from}: ${ref.kind} ${ref.target}${ref.attribute ? '.' + ref.attribute : ''}`;
    if (ref.kind === 'Condition') {
      if (!conditions.has(ref.target)) problems.push(`${where}: no such condition`);
      continue;
    }
    if (ref.kind === 'DependsOn') {
      if (!resources[ref.target]) problems.push(`${where}: no such resource`);
      continue;
    }
    if (ref.from.startsWith('Conditions.')) {
      if (!params.has(ref.target) && !PSEUDO.includes(ref.target))
        problems.push(`${where}: conditions may only use parameters`);
      continue;
    }
    const resource = resources[ref.target];
    if (ref.attribute !== undefined) {
      if (!resource) problems.push(`${where}: no such resource`);
      else if (!ATTRIBUTES[resource.Type]?.[ref.attribute])
        problems.push(`${where}: ${resource.Type} has no attribute ${ref.attribute}`);
    } else if (!resource && !params.has(ref.target) && !PSEUDO.includes(ref.target)) {
      problems.push(`${where}: no such parameter, resource or pseudo parameter`);
    }
    if (resource?.Condition && !ref.guards.includes(resource.Condition)) {
      problems.push(
        `${where}: ${ref.target} exists only when ${resource.Condition}; guard the reference with that condition`,
      );
    }
  }
  return problems;
}

/** Resolves every output the stack would have. */
export function resolveOutputs(template: CfnTemplate, s: Scope): Record<string, string> {
  const outputs: Record<string, string> = {};
  for (const [key, out] of Object.entries(template.Outputs ?? {})) {
    if (out.Condition && !s.conditions[out.Condition]) continue;
    const value = resolve(out.Value, s);
    if (typeof value !== 'string' && typeof value !== 'number' && typeof value !== 'boolean') {
      throw new TemplateError(`Output ${key} does not resolve to a string`);
    }
    outputs[key] = String(value);
  }
  return outputs;
}

// ------------------------------------------------------------------------------------------------
// Instantiation: what a stack made from the template would contain
// ------------------------------------------------------------------------------------------------

export interface PlannedResource {
  type: string;
  physicalId: string;
  props: unknown;
}

const NAME_PROPERTIES = [
  'BucketName',
  'RepositoryName',
  'LogGroupName',
  'Name',
  'ComputeEnvironmentName',
  'JobQueueName',
  'JobDefinitionName',
];

/** Dependency order (Ref/GetAtt/Sub/DependsOn between resources), template order among equals. */
export function orderByDependencies(template: CfnTemplate, ids: string[]): string[] {
  const wanted = new Set(ids);
  const deps = new Map<string, Set<string>>(ids.map((id) => [id, new Set<string>()]));
  for (const ref of collectReferences(template)) {
    if (wanted.has(ref.from) && wanted.has(ref.target) && ref.from !== ref.target)
      deps.get(ref.from)!.add(ref.target);
  }
  const out: string[] = [];
  const done = new Set<string>();
  const visit = (id: string, path: Set<string>) => {
    if (done.has(id)) return;
    if (path.has(id))
      throw new TemplateError(`Circular dependency between resources: [${[...path].join(', ')}]`);
    path.add(id);
    for (const dep of deps.get(id) ?? []) visit(dep, path);
    path.delete(id);
    done.add(id);
    out.push(id);
  };
  for (const id of ids) visit(id, new Set());
  return out;
}

/**
 * Physical ids (names first: they only use parameters), then fully resolved properties, for every
 * resource whose condition holds, in dependency order. `existing` keeps ids of resources that exist.
 */
export function planResources(
  template: CfnTemplate,
  scope: Scope,
  existing?: Map<string, { type: string; physicalId: string }>,
) {
  const ids = orderByDependencies(template, includedResources(template, scope.conditions));
  for (const id of ids) {
    const res = template.Resources[id]!;
    const old = existing?.get(id);
    if (old && old.type === res.Type) {
      scope.physicalIds[id] = old.physicalId;
      continue;
    }
    const nameProps: Record<string, unknown> = {};
    for (const key of NAME_PROPERTIES) {
      const v = res.Properties?.[key];
      if (v !== undefined) nameProps[key] = resolve(v, scope);
    }
    scope.physicalIds[id] = makePhysicalId(res.Type, id, nameProps, scope);
  }
  const planned = new Map<string, PlannedResource>();
  for (const id of ids) {
    const res = template.Resources[id]!;
    planned.set(id, {
      type: res.Type,
      physicalId: scope.physicalIds[id]!,
      props: resolve(res.Properties ?? {}, scope),
    });
  }
  return planned;
}

/** A whole stack instance: parameters, conditions, resources and outputs. */
export function instantiate(
  template: CfnTemplate,
  given: Record<string, string>,
  where: { stackName?: string; region?: string; accountId?: string } = {},
) {
  const stackName = where.stackName ?? 'skyfarm';
  const region = where.region ?? 'eu-west-1';
  const accountId = where.accountId ?? '123456789012';
  const base = {
    region,
    accountId,
    partition: 'aws',
    stackName,
    stackId: `arn:aws:cloudformation:${region}:${accountId}:stack/${stackName}/00000000-0000-0000-0000-000000000000`,
    params: resolveParameters(template, given),
    physicalIds: {} as Record<string, string>,
    resourceTypes: Object.fromEntries(Object.entries(template.Resources).map(([id, r]) => [id, r.Type])),
  };
  const scope: Scope = { ...base, conditions: evaluateConditions(template, base) };
  const resources = planResources(template, scope);
  return { scope, resources, outputs: resolveOutputs(template, scope) };
}
