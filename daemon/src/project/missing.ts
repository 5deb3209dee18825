// Lists of missing files, bounded wherever they are shown: a project may miss 100,000 files, and a
// reply or a job message must still fit in one protocol message.
import { LIMITS } from '../../../protocol/generated/protocol.js';

/** About a quarter of a message: the rest of a reply (a job, a manifest reference) fits beside it. */
const MISSING_LISTED_BYTES = LIMITS.maxMessageBytes / 4;

/** The missing files a reply lists: the first ones, at most maxMissingListed and about 256 KiB. */
export function listedMissing(paths: readonly string[]): string[] {
  const listed: string[] = [];
  let bytes = 0;
  for (const path of paths) {
    bytes += Buffer.byteLength(path) + 4;
    if (listed.length >= LIMITS.maxMissingListed || bytes > MISSING_LISTED_BYTES) break;
    listed.push(path);
  }
  return listed;
}

/**
 * "a, b, c" or "a, b, c and 99,997 more": at most `shown` paths and about 2,000 characters, so an
 * error or a job's message stays well inside the protocol's 8,192 however many files are named.
 */
export function pathsText(paths: readonly string[], shown = 20): string {
  const listed: string[] = [];
  let length = 0;
  for (const path of paths.slice(0, shown)) {
    if (listed.length > 0 && length + path.length > 2000) break;
    listed.push(path);
    length += path.length + 2;
  }
  const more = paths.length - listed.length;
  return more > 0 ? `${listed.join(', ')} and ${more.toLocaleString('en-US')} more` : listed.join(', ');
}
