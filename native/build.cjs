#!/usr/bin/env node
// Builds the addon with node-gyp: `node native/build.cjs` (npm's install step and `npm run build:native`).
// node-gyp downloads Node's headers unless told where they are. A Node installed from a distribution package
// (Debian's nodejs + libnode-dev, NodeSource) has them beside itself, in <prefix>/include/node: when their version
// is the running Node's, the build uses them (npm_config_nodedir=<prefix>), so no download is needed. An explicit
// npm_config_nodedir (or --nodedir) is left as it is.
'use strict';
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawnSync } = require('node:child_process');

function localHeaders() {
  const prefix = path.resolve(path.dirname(process.execPath), '..');
  const versionH = path.join(prefix, 'include', 'node', 'node_version.h');
  if (!fs.existsSync(versionH)) return null;
  const text = fs.readFileSync(versionH, 'utf8');
  const part = (name) => (text.match(new RegExp(`#define NODE_${name}_VERSION (\\d+)`)) ?? [])[1];
  const version = `${part('MAJOR')}.${part('MINOR')}.${part('PATCH')}`;
  return version === process.versions.node ? prefix : null;
}

const env = { ...process.env };
if (!env.npm_config_nodedir) {
  const prefix = localHeaders();
  if (prefix) env.npm_config_nodedir = prefix;
}
let gyp;
try {
  gyp = require.resolve('node-gyp/bin/node-gyp.js');
} catch {
  process.stderr.write('\nmmtrain: node-gyp is missing from node_modules; run npm ci (or npm install) first.\n\n');
  process.exit(1);
}
const jobs = String(Math.max(1, Math.min(os.availableParallelism?.() ?? os.cpus().length, 8)));
const r = spawnSync(process.execPath, [gyp, 'rebuild', '-j', jobs, ...process.argv.slice(2)], { env, stdio: 'inherit' });
if (r.status !== 0 && !env.npm_config_nodedir) {
  process.stderr.write('\nmmtrain: the addon build failed. If node-gyp could not download Node\'s headers, install them\n' +
    '  (Debian/Ubuntu: apt-get install libnode-dev) or point at them: npm_config_nodedir=/usr npm ci\n\n');
}
process.exit(r.status ?? 1);
