// The one error type the daemon raises on purpose: a protocol error code plus a message for humans.
// The add-on and the CLI match on `code`; `message` must never contain secrets.
import { ERROR_CODES, type ErrorCode } from '../../protocol/generated/protocol.js';

export class SkyfarmError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message?: string, options?: { cause?: unknown }) {
    super(message ?? ERROR_CODES[code], options);
    this.code = code;
    this.name = 'SkyfarmError';
  }
}

export function isSkyfarmError(error: unknown): error is SkyfarmError {
  return error instanceof SkyfarmError;
}

/** Turns anything thrown into a code + message safe to send to a client. */
export function toErrorInfo(error: unknown): { code: ErrorCode; message: string } {
  if (error instanceof SkyfarmError) return { code: error.code, message: error.message };
  return { code: 'INTERNAL', message: `internal error: ${(error as Error)?.message ?? String(error)}` };
}
