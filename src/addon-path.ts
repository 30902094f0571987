// Where node-gyp put an addon of this package: build/Release/<name>.node under the package root.
import { existsSync } from 'node:fs';
import { basename, dirname, join, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The package root: the folder above dist/ (or src/). */
function packageRoot(): string {
  const here = dirname(fileURLToPath(import.meta.url)); // dist/src, or src
  return basename(dirname(here)) === 'dist' ? dirname(dirname(here)) : dirname(here);
}

/**
 * Why build/Release/<name>.node is missing and what to run. Installed as a dependency (under node_modules), the likely
 * cause is npm 11.19 and later: in a project whose package.json has an "allowScripts" field, a dependency's install
 * script (the addon's build) runs only once approved there.
 */
export function addonMissing(name: string, needs: string, root = packageRoot()): string {
  const head = `mmtrain: the ${name === 'mmtrain_native' ? 'native' : 'image'} addon build/Release/${name}.node was not found in ${root}.`;
  if (root.split(sep).includes('node_modules')) {
    return `${head} Its install script builds it, and npm 11.19 and later skip a dependency's install script until the project approves it: in your project run \`npm install-scripts approve mmtrain && npm rebuild mmtrain\` (or add "allowScripts": { "mmtrain": true } to its package.json before installing). ${needs}`;
  }
  return `${head} Run \`npm run build\` there. ${needs}`;
}

/** The path of build/Release/<name>.node under the package root, or undefined when it was not built. */
export function builtAddon(name: string): string | undefined {
  const file = join(packageRoot(), 'build', 'Release', `${name}.node`);
  return existsSync(file) ? file : undefined;
}
