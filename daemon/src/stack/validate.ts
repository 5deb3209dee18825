// Checks stack.* parameters before any AWS call, with messages that name the flag and the rule.
import type { StackDeployParams, StackStatusParams } from '../../../protocol/generated/protocol.js';
import { SkyfarmError } from '../errors.js';

export const DEFAULT_STACK_NAME = 'skyfarm';
/**
 * CloudFormation allows 128 characters; resource names (ECR repository, compute environments, log
 * group) derive from the stack name, and ECR names are lower-case without repeated hyphens.
 */
export const STACK_NAME_PATTERN = /^[A-Za-z][A-Za-z0-9]*(-[A-Za-z0-9]+)*$/;
export const STACK_NAME_MAX = 32;
const REGION_PATTERN = /^[a-z]{2}(-[a-z]+)+-\d{1,2}$/;
const PROFILE_PATTERN = /^[A-Za-z0-9_.+=,@:/-]{1,128}$/;
const EMAIL_PATTERN =
  /^[^\s@"<>()\\,;:]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$/;
export const MAX_VCPUS_LIMIT = 10_000;

function bad(message: string): never {
  throw new SkyfarmError('BAD_ARGUMENT', message);
}

export interface ValidTarget {
  stackName: string;
  region?: string;
  profile?: string;
}

export function validateTarget(params: StackStatusParams): ValidTarget {
  const stackName = params.stackName ?? DEFAULT_STACK_NAME;
  if (
    typeof stackName !== 'string' ||
    !STACK_NAME_PATTERN.test(stackName) ||
    stackName.length > STACK_NAME_MAX
  ) {
    bad(
      `Invalid stack name ${JSON.stringify(stackName)}: use 1-${STACK_NAME_MAX} letters, digits and single hyphens, ` +
        `starting with a letter (e.g. "skyfarm" or "skyfarm-gpu").`,
    );
  }
  const target: ValidTarget = { stackName };
  if (params.region !== undefined && params.region !== '') {
    if (typeof params.region !== 'string' || !REGION_PATTERN.test(params.region)) {
      bad(
        `Invalid region ${JSON.stringify(params.region)}: expected an AWS region code such as "eu-central-1".`,
      );
    }
    target.region = params.region;
  }
  if (params.profile !== undefined && params.profile !== '') {
    if (typeof params.profile !== 'string' || !PROFILE_PATTERN.test(params.profile)) {
      bad(`Invalid profile name ${JSON.stringify(params.profile)}.`);
    }
    target.profile = params.profile;
  }
  return target;
}

export interface ValidDeploy extends ValidTarget {
  gpu?: boolean;
  maxVcpus?: number;
  notifyEmail?: string;
}

export function validateDeploy(params: StackDeployParams): ValidDeploy {
  const out: ValidDeploy = validateTarget(params);
  if (params.gpu !== undefined) {
    if (typeof params.gpu !== 'boolean') bad('gpu must be true or false.');
    out.gpu = params.gpu;
  }
  if (params.maxVcpus !== undefined) {
    const n = params.maxVcpus;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > MAX_VCPUS_LIMIT) {
      bad(`Invalid --max-vcpus ${JSON.stringify(n)}: expected a whole number from 1 to ${MAX_VCPUS_LIMIT}.`);
    }
    out.maxVcpus = n;
  }
  if (params.notifyEmail !== undefined) {
    const email = params.notifyEmail;
    // An empty address switches mail off.
    if (typeof email !== 'string' || email.length > 320 || (email !== '' && !EMAIL_PATTERN.test(email))) {
      bad(`Invalid --notify-email ${JSON.stringify(email)}: expected an address such as "me@example.com".`);
    }
    out.notifyEmail = email;
  }
  return out;
}
