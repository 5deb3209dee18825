// Why a cost is unknown: said once, with the IAM action that would make it known when AWS denied one.
// A cost is never guessed: any price or instance that cannot be had makes the whole figure unknown.
import { awsErrorCode, mapAwsError } from '../aws/errors.js';

export class CostUnknown extends Error {
  constructor(
    readonly reason: string,
    /** The IAM action the identity lacks, when AWS denied one. */
    readonly action?: string,
  ) {
    super(reason);
  }
}

/** An error of the call `action` (e.g. "pricing:GetProducts") → why the cost is unknown. */
export function costUnknownFrom(error: unknown, action: string): CostUnknown {
  if (error instanceof CostUnknown) return error;
  const mapped = mapAwsError(error, { action });
  if (mapped.code === 'AWS_ACCESS_DENIED') return new CostUnknown(`AWS denied ${action}`, action);
  if (mapped.code === 'AWS_NO_CREDENTIALS') return new CostUnknown(`no usable AWS credentials for ${action}`);
  if (mapped.message.startsWith('Cannot reach AWS'))
    return new CostUnknown(`cannot reach AWS for ${action} (${awsErrorCode(error)})`);
  return new CostUnknown(`${action} failed: ${awsErrorCode(error)}`);
}

/** The text every surface shows for an unknown cost. */
export function costUnknownText(cost: { unknownReason?: string; missingAction?: string }): string {
  const reason = cost.unknownReason ?? 'no prices yet';
  return cost.missingAction
    ? `cost unknown: ${reason} (allow ${cost.missingAction} for your AWS identity)`
    : `cost unknown: ${reason}`;
}
