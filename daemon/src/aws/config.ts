// Region and credentials for every AWS client the daemon makes. Credentials come from the SDK's own
// default provider chain (environment, shared files / profiles incl. SSO and credential_process, web
// identity, container and instance metadata); this module only checks that the chain yields something
// and explains what was tried when it does not. Secrets never appear in messages.
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { CloudFormationClientConfig } from '@aws-sdk/client-cloudformation';
import type * as CfnSdk from '@aws-sdk/client-cloudformation';
import { SkyfarmError } from '../errors.js';
import { lazySdk } from './lazy-sdk.js';

const cfnSdk = lazySdk<typeof CfnSdk>('@aws-sdk/client-cloudformation');

export type CredentialsProvider = Exclude<CloudFormationClientConfig['credentials'], undefined>;

export interface AwsConfig {
  region: string;
  profile?: string;
  /** The default chain's provider, resolved once; share it between clients so it is refreshed once. */
  credentials: CredentialsProvider;
  /** Endpoint overrides from AWS_ENDPOINT_URL_<SERVICE> / AWS_ENDPOINT_URL, by lower-case service id. */
  endpoints: Record<string, string>;
}

export interface AwsParams {
  profile?: string;
  region?: string;
}

type Env = Record<string, string | undefined>;

function configFilePath(env: Env): string {
  return env.AWS_CONFIG_FILE || join(env.HOME || homedir(), '.aws', 'config');
}

function credentialsFilePath(env: Env): string {
  return env.AWS_SHARED_CREDENTIALS_FILE || join(env.HOME || homedir(), '.aws', 'credentials');
}

/** Reads one key of one profile from an INI file (`[default]`, `[profile name]` or `[name]`). */
export function readProfileValue(
  path: string,
  profile: string,
  key: string,
  configStyle: boolean,
): string | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
  const wanted = configStyle && profile !== 'default' ? [`profile ${profile}`] : [profile];
  if (configStyle && profile === 'default') wanted.push('profile default');
  let inSection = false;
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.replace(/(^|\s)[#;].*$/, '').trim();
    if (!line) continue;
    const section = /^\[\s*(.+?)\s*\]$/.exec(line);
    if (section) {
      inSection = wanted.includes((section[1] as string).replace(/\s+/g, ' '));
      continue;
    }
    if (!inSection) continue;
    const kv = /^([^=]+?)\s*=\s*(.*)$/.exec(line);
    if (kv && kv[1] === key && kv[2]) return kv[2];
  }
  return undefined;
}

/** Endpoint overrides the SDK would also honour; passed explicitly so an injected env is respected. */
export function endpointOverrides(env: Env): Record<string, string> {
  if (env.AWS_IGNORE_CONFIGURED_ENDPOINT_URLS === 'true') return {};
  const out: Record<string, string> = {};
  for (const service of [
    'cloudformation',
    's3',
    'batch',
    'sesv2',
    'cloudwatch_logs',
    'codebuild',
    'ecr',
    'pricing',
    'ec2',
    'ecs',
  ]) {
    const value = env[`AWS_ENDPOINT_URL_${service.toUpperCase()}`] || env.AWS_ENDPOINT_URL;
    if (value) out[service] = value;
  }
  return out;
}

export function resolveRegion(params: AwsParams, env: Env): string {
  const profile = params.profile || env.AWS_PROFILE || 'default';
  const region =
    params.region ||
    env.AWS_REGION ||
    env.AWS_DEFAULT_REGION ||
    readProfileValue(configFilePath(env), profile, 'region', true);
  if (!region) {
    throw new SkyfarmError(
      'AWS_NO_REGION',
      `No AWS region configured. Tried: --region, AWS_REGION, AWS_DEFAULT_REGION, and "region" of profile ` +
        `"${profile}" in ${configFilePath(env)}${existsSync(configFilePath(env)) ? '' : ' (file missing)'}. ` +
        `Pass --region (e.g. --region eu-central-1) or set AWS_REGION.`,
    );
  }
  return region;
}

function describeTried(params: AwsParams, env: Env): string {
  const profile = params.profile || env.AWS_PROFILE;
  const missing = (path: string) => (existsSync(path) ? '' : ' (file missing)');
  const tried: string[] = [];
  if (profile) {
    tried.push(`AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (skipped: a profile is selected)`);
  } else {
    tried.push(
      `AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (${env.AWS_ACCESS_KEY_ID ? 'secret key missing' : 'not set'})`,
    );
  }
  const name = profile || 'default';
  const source = params.profile ? '--profile' : env.AWS_PROFILE ? 'AWS_PROFILE' : 'default profile';
  tried.push(
    `${source}=${name}: keys, SSO, credential_process and role settings in ${credentialsFilePath(env)}` +
      `${missing(credentialsFilePath(env))} and ${configFilePath(env)}${missing(configFilePath(env))}`,
  );
  tried.push(
    `AWS_WEB_IDENTITY_TOKEN_FILE (${env.AWS_WEB_IDENTITY_TOKEN_FILE ? 'set, but no role' : 'not set'})`,
  );
  const container = env.AWS_CONTAINER_CREDENTIALS_RELATIVE_URI || env.AWS_CONTAINER_CREDENTIALS_FULL_URI;
  tried.push(`container credentials (${container ? 'no answer' : 'AWS_CONTAINER_CREDENTIALS_* not set'})`);
  tried.push(
    `EC2 instance metadata (${env.AWS_EC2_METADATA_DISABLED && env.AWS_EC2_METADATA_DISABLED !== 'false' ? 'disabled by AWS_EC2_METADATA_DISABLED' : 'no answer'})`,
  );
  return tried.join(', ');
}

/** What the credential chain said, without echoing anything it might have read. */
function chainHint(error: unknown): string {
  const message = String((error as Error)?.message ?? '');
  if (/sso|token/i.test(message) && /expired|refresh/i.test(message))
    return ' The SSO session has expired: run `aws sso login`.';
  if (/could not be found|not found in/i.test(message)) return ' The selected profile does not exist.';
  return '';
}

export function noCredentialsError(params: AwsParams, env: Env, cause?: unknown): SkyfarmError {
  return new SkyfarmError(
    'AWS_NO_CREDENTIALS',
    `No AWS credentials found. Tried: ${describeTried(params, env)}.${chainHint(cause)} ` +
      `Configure credentials with \`aws configure\` / \`aws sso login\`, or pass --profile.`,
    { cause },
  );
}

/**
 * Finds the region (params → AWS_REGION/AWS_DEFAULT_REGION → profile config) and checks that the
 * default credential chain yields credentials. Throws AWS_NO_REGION / AWS_NO_CREDENTIALS.
 */
export async function resolveAwsConfig(params: AwsParams, env: Env = process.env): Promise<AwsConfig> {
  const region = resolveRegion(params, env);
  const profile = params.profile || env.AWS_PROFILE || undefined;
  const endpoints = endpointOverrides(env);
  // The chain's first link, taken from `env` itself so an injected environment (a daemon started with
  // its own env) behaves like process.env. A selected profile wins over keys, as in the SDK.
  if (!profile && env.AWS_ACCESS_KEY_ID && env.AWS_SECRET_ACCESS_KEY) {
    const identity = {
      accessKeyId: env.AWS_ACCESS_KEY_ID,
      secretAccessKey: env.AWS_SECRET_ACCESS_KEY,
      ...(env.AWS_SESSION_TOKEN ? { sessionToken: env.AWS_SESSION_TOKEN } : {}),
    };
    return { region, credentials: async () => identity, endpoints };
  }
  const probe = new cfnSdk.CloudFormationClient({ region, ...(profile ? { profile } : {}) });
  const credentials = probe.config.credentials;
  try {
    const identity = await credentials();
    if (!identity?.accessKeyId) throw new Error('empty credentials');
  } catch (error) {
    throw noCredentialsError(params, env, error);
  } finally {
    probe.destroy();
  }
  return { region, ...(profile ? { profile } : {}), credentials, endpoints };
}
