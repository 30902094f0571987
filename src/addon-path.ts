// Where node-gyp put an addon of this package: build/Release/<name>.node under the package root.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The path of build/Release/<name>.node, or undefined when it was not built. */
export function builtAddon(name: string): string | undefined {
  // dist/src/<dir>/x.js -> the package root is three levels up; src/<dir>/x.ts (ts-node) two.
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    const candidate = join(dir, 'build', 'Release', `${name}.node`);
    if (existsSync(candidate)) return candidate;
    dir = dirname(dir);
  }
  return undefined;
}
