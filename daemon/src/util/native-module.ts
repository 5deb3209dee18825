// A native module (better-sqlite3) built for one Node.js fails to load in another with a raw dlopen
// stack trace. Users switch Node versions (nvm, a new LTS) under an installed skyfarm: say which
// versions disagree and the one command that fixes it.
import { createRequire } from 'node:module';
import path from 'node:path';
import { SkyfarmError } from '../errors.js';

/** NODE_MODULE_VERSION → Node.js major (https://nodejs.org/en/download/releases, "NODE_MODULE_VERSION"). */
const NODE_MAJOR_BY_ABI: Record<number, number> = {
  108: 18,
  111: 19,
  115: 20,
  120: 21,
  127: 22,
  131: 23,
  137: 24,
  141: 25,
};

function nodeName(abi: number): string {
  const major = NODE_MAJOR_BY_ABI[abi];
  return major ? `Node.js ${major} (NODE_MODULE_VERSION ${abi})` : `NODE_MODULE_VERSION ${abi}`;
}

/** The folder holding node_modules/<name>, where `npm rebuild <name>` must run. */
function installRoot(name: string): string | null {
  try {
    const entry = createRequire(import.meta.url).resolve(name);
    const marker = `${path.sep}node_modules${path.sep}`;
    const at = entry.lastIndexOf(marker);
    return at >= 0 ? entry.slice(0, at) : null;
  } catch {
    return null;
  }
}

/**
 * The error to show for `error` thrown while loading native module `name`, or null when it is not a
 * Node.js version mismatch (then the original error stands).
 */
export function nativeModuleMismatch(
  error: unknown,
  name: string,
  runtime: { version: string; abi: string } = { version: process.version, abi: process.versions.modules },
): SkyfarmError | null {
  const text = error instanceof Error ? error.message : String(error);
  const match = /NODE_MODULE_VERSION (\d+)\.[^]*?requires\s+NODE_MODULE_VERSION (\d+)/.exec(text);
  if (!match) return null;
  const built = Number(match[1]);
  const root = installRoot(name);
  const fix = `npm rebuild ${name}` + (root ? ` (in ${root})` : '');
  return new SkyfarmError(
    'NODE_MODULE_MISMATCH',
    `${name} was built for ${nodeName(built)}, but skyfarm runs on Node.js ${runtime.version} ` +
      `(NODE_MODULE_VERSION ${runtime.abi}); rebuild it for this Node.js: ${fix}, ` +
      `or run skyfarm with the Node.js it was installed with`,
    { cause: error },
  );
}
