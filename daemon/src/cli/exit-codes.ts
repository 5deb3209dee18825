import type { ErrorCode, JobState } from '../../../protocol/generated/protocol.js';

export const EXIT = { ok: 0, input: 1, failed: 2, canceled: 3, unreachable: 4 } as const;

export function exitCodeForError(code: ErrorCode): number {
  return code === 'DAEMON_UNREACHABLE' ? EXIT.unreachable : EXIT.input;
}

export function exitCodeForState(state: JobState): number {
  if (state === 'done') return EXIT.ok;
  if (state === 'canceled') return EXIT.canceled;
  if (state === 'failed') return EXIT.failed;
  return EXIT.ok;
}
