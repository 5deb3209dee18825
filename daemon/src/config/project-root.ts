// Finds the installed skyfarm package folder (works from dist/ and from sources under tsx).
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

let cached: string | undefined;
export function findProjectRoot(): string {
  if (cached) return cached;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 8; i++) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'protocol', 'schema.json'))) {
      cached = dir;
      return dir;
    }
    dir = dirname(dir);
  }
  throw new Error('cannot locate the skyfarm package folder');
}
