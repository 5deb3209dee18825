// Maps AWS SDK errors to SkyfarmError codes with messages a user can act on. AWS error messages do
// not contain secrets; request parameters and credentials are never added to them here.
import { SkyfarmError } from '../errors.js';

export interface AwsCallContext {
  /** IAM-style action, e.g. "cloudformation:CreateStack". */
  action: string;
  /** What the call was about (stack name, bucket), used when AWS's message does not say. */
  resource?: string;
  /** Endpoint in use, for "cannot reach" messages. */
  endpoint?: string;
}

interface AwsLikeError {
  name?: string;
  code?: string;
  Code?: string;
  message?: string;
  $metadata?: { httpStatusCode?: number };
}

const ACCESS_DENIED = new Set([
  'AccessDenied',
  'AccessDeniedException',
  'UnauthorizedOperation',
  'AuthorizationError',
  'Forbidden',
]);
const BAD_CREDENTIALS = new Set([
  'InvalidClientTokenId',
  'UnrecognizedClientException',
  'SignatureDoesNotMatch',
  'InvalidAccessKeyId',
  'ExpiredToken',
  'ExpiredTokenException',
  'RequestExpired',
  'InvalidToken',
]);
const NETWORK = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ECONNRESET',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'TimeoutError',
]);

export function awsErrorCode(error: unknown): string {
  const e = error as AwsLikeError;
  return e?.Code ?? e?.code ?? e?.name ?? 'Error';
}

function firstLine(text: string, max = 600): string {
  const line = text.split(/\r?\n/)[0] ?? '';
  return line.length > max ? `${line.slice(0, max)}…` : line;
}

/** "User: arn:… is not authorized to perform: svc:Action on resource: arn:… because …" */
export function parseAccessDenied(message: string): {
  principal?: string;
  action?: string;
  resource?: string;
} {
  const m =
    /(?:User: (\S+) )?is not authorized to perform: (\S+?)(?: on resource: (\S+?))?(?:\s+because|\s+with an explicit|$|\.?\s*$)/.exec(
      message,
    );
  if (!m) return {};
  return { principal: m[1], action: m[2], resource: m[3] };
}

export function mapAwsError(error: unknown, ctx: AwsCallContext): SkyfarmError {
  if (error instanceof SkyfarmError) return error;
  const e = error as AwsLikeError;
  const code = awsErrorCode(error);
  const message = firstLine(String(e?.message ?? error));
  const status = e?.$metadata?.httpStatusCode;

  if (e?.name === 'CredentialsProviderError') {
    return new SkyfarmError(
      'AWS_NO_CREDENTIALS',
      `No AWS credentials available for ${ctx.action}: ${message}`,
      { cause: error },
    );
  }
  if (ACCESS_DENIED.has(code) || (status === 403 && !BAD_CREDENTIALS.has(code))) {
    const parsed = parseAccessDenied(message);
    const action = parsed.action ?? ctx.action;
    const resource = parsed.resource ?? ctx.resource ?? '*';
    const who = parsed.principal ? ` for ${parsed.principal}` : '';
    return new SkyfarmError(
      'AWS_ACCESS_DENIED',
      `AWS denied ${action} on ${resource}${who}. Allow that action for your IAM user or role and retry. (${code}: ${message})`,
      { cause: error },
    );
  }
  if (BAD_CREDENTIALS.has(code)) {
    const expired = /Expired/i.test(code);
    return new SkyfarmError(
      'AWS_NO_CREDENTIALS',
      expired
        ? `The AWS credentials have expired (${code}); refresh them (e.g. \`aws sso login\`) and retry.`
        : `AWS rejected the configured credentials (${code}) during ${ctx.action}; check the access key / profile.`,
      { cause: error },
    );
  }
  if (/Region is missing/i.test(message)) {
    return new SkyfarmError('AWS_NO_REGION', 'No AWS region configured; pass --region or set AWS_REGION.', {
      cause: error,
    });
  }
  const errno = (error as { code?: string })?.code;
  if ((errno && NETWORK.has(errno)) || NETWORK.has(code)) {
    return new SkyfarmError(
      'AWS_ERROR',
      `Cannot reach AWS for ${ctx.action}${ctx.endpoint ? ` at ${ctx.endpoint}` : ''}: ${errno ?? code}`,
      { cause: error },
    );
  }
  return new SkyfarmError(
    'AWS_ERROR',
    `${ctx.action}${ctx.resource ? ` (${ctx.resource})` : ''} failed: ${code}: ${message}`,
    {
      cause: error,
    },
  );
}
