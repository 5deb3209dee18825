// The AWS SDK packages load when first used, not when the daemon starts: a daemon that only renders
// locally never pays for them (about 20 MiB of resident memory). The SDK packages are CommonJS
// without an "exports" map, so `require` returns the very module instance an `import` would.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

/** A stand-in for `import * as sdk from id` that loads the package on the first property read. */
export function lazySdk<T extends object>(id: string): T {
  let loaded: T | undefined;
  return new Proxy({} as T, {
    get(_target, key) {
      loaded ??= require(id) as T;
      return Reflect.get(loaded, key);
    },
  });
}
