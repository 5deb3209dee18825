// The shared secret every WebSocket client presents. Created once, 0600, never logged.
import { randomBytes, timingSafeEqual, createHash } from 'node:crypto';
import { readFileSync, writeFileSync, statSync } from 'node:fs';
import { SkyfarmError } from '../errors.js';

export function loadOrCreateToken(path: string): string {
  try {
    const mode = statSync(path).mode & 0o777;
    if (mode & 0o077 && process.platform !== 'win32') {
      throw new SkyfarmError(
        'BAD_ARGUMENT',
        `token file ${path} is readable by other users (mode ${mode.toString(8)}); run \`chmod 600 ${path}\``,
      );
    }
    const token = readFileSync(path, 'utf8').trim();
    if (token.length >= 32) return token;
  } catch (error) {
    if (error instanceof SkyfarmError) throw error;
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  const token = randomBytes(32).toString('base64url');
  writeFileSync(path, token + '\n', { mode: 0o600 });
  return token;
}

/** Constant-time comparison; hashing first makes the lengths equal so nothing leaks through timing. */
export function tokenMatches(presented: string | undefined, expected: string): boolean {
  if (presented === undefined) return false;
  const a = createHash('sha256').update(presented).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}
