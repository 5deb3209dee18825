// Requests and replies that carry file lists stay inside one message for any project size: a
// dependency list sent by reference (protocol/dependency-list.ts) is read before the handler runs,
// and a reply lists the first missing files with the count of all of them.
import { LIMITS } from '../../../protocol/generated/protocol.js';
import { readDependencyList, RecentDependencyLists } from '../protocol/dependency-list.js';
import type { RpcRegistry } from '../rpc/registry.js';
import { SkyfarmError } from '../errors.js';
import { listedMissing } from './missing.js';

type WithDependencies = {
  dependencies?: unknown[];
  dependencyList?: { path: string; sha256: string; count: number };
};

/** A log reply keeps its newest lines within half a message (a job may log 100,000 missing files). */
export function boundedLogLines(lines: string[]): string[] {
  let bytes = 0;
  let first = lines.length;
  while (first > 0) {
    const size = Buffer.byteLength(lines[first - 1]!) + 4;
    if (bytes + size > LIMITS.maxMessageBytes / 2) break;
    bytes += size;
    first--;
  }
  if (first === 0) return lines;
  return [
    `[skyfarm] … ${first} earlier lines not shown (one reply holds at most 1 MiB)`,
    ...lines.slice(first),
  ];
}

/**
 * Wraps render.submit and project.upload (dependency lists by reference in, bounded missing lists
 * out) and jobs.logs (the newest lines that fit one message). `rememberListsMs`: how long a list
 * read stays parsed for a re-submit of the same bytes.
 */
export function handleLargeLists(
  registry: RpcRegistry,
  stateDir: string,
  options: { rememberListsMs?: number } = {},
): void {
  // A re-submit's list (the same bytes) is not parsed again within this window.
  const recent = new RecentDependencyLists({ lingerMs: options.rememberListsMs ?? 0 });
  const logs = registry.get('jobs.logs');
  if (logs) {
    registry.register('jobs.logs', async (params, context) => {
      const result = (await logs(params, context)) as { lines: string[] };
      return { ...result, lines: boundedLogLines(result.lines) };
    });
  }
  for (const method of ['render.submit', 'project.upload'] as const) {
    const handler = registry.get(method);
    if (!handler) continue;
    registry.register(method, async (params, context) => {
      let resolved = params;
      const { dependencyList, ...rest } = params as typeof params & WithDependencies;
      if (dependencyList) {
        if ((params as WithDependencies).dependencies) {
          await readDependencyList(stateDir, dependencyList).catch(() => undefined); // still removed
          throw new SkyfarmError('BAD_ARGUMENT', 'send dependencies or dependencyList, not both');
        }
        resolved = { ...rest, dependencies: await readDependencyList(stateDir, dependencyList, recent) };
      }
      const result = (await handler(resolved, context)) as { missing?: string[] };
      if (!result.missing) return result as never;
      return {
        ...result,
        missing: listedMissing(result.missing),
        missingCount: result.missing.length,
      } as never;
    });
  }
}
