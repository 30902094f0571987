#!/usr/bin/env node
// Checks a built addon's link without loading it (a CUDA build cannot be loaded on a machine without the CUDA
// libraries' full set): `node native/check-link.cjs build/Release/mmtrain_native.node [libname ...]`.
//  - each libname given (e.g. libtorch_cuda.so) must be among the addon's DT_NEEDED entries (any soname version);
//  - every undefined symbol of the addon, except Node's own (napi_*, node_api_*), must be defined by one of the
//    libraries it needs or theirs, found as the dynamic loader would (the addon's RUNPATH, then the system's).
// A library that cannot be found on this machine is listed; its symbols count as missing.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { execFileSync } = require('node:child_process');

function fail(msg) {
  process.stderr.write(`check-link: ${msg}\n`);
  process.exit(1);
}

function run(cmd, args) {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', maxBuffer: 1 << 30, stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    if (e.code === 'ENOENT') fail(`${cmd} is missing (apt-get install binutils)`);
    throw e;
  }
}

/** DT_NEEDED names and RUNPATH/RPATH folders of an ELF file. */
function dynamicSection(file) {
  const out = run('readelf', ['-d', '-W', file]);
  const needed = [...out.matchAll(/\(NEEDED\).*\[(.+)\]/g)].map((m) => m[1]);
  const paths = [...out.matchAll(/\((?:RUNPATH|RPATH)\).*\[(.+)\]/g)].flatMap((m) => m[1].split(':'));
  return { needed, paths: paths.map((p) => p.replace('$ORIGIN', path.dirname(file))) };
}

function systemDirs() {
  const dirs = [];
  try {
    for (const line of run('ldconfig', ['-p']).split('\n')) {
      const m = line.match(/=> (.+)$/);
      if (m) dirs.push(path.dirname(m[1]));
    }
  } catch { /* no ldconfig: the fixed folders below */ }
  return [...new Set([...dirs, '/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/lib/x86_64-linux-gnu', '/usr/lib64', '/usr/lib', '/lib'])];
}

function symbols(file, which) {
  const out = run('nm', ['-D', which === 'defined' ? '--defined-only' : '--undefined-only', file]);
  const set = new Map();
  for (const line of out.split('\n')) {
    const parts = line.trim().split(/\s+/);
    if (parts.length < 2) continue;
    const [type, name] = parts.length === 2 ? parts : [parts[1], parts[2]];
    set.set(name.replace(/@.*$/, ''), type);
  }
  return set;
}

const [addon, ...mustNeed] = process.argv.slice(2);
if (!addon) fail('usage: node native/check-link.cjs <addon.node> [libname ...]');
if (!fs.existsSync(addon)) fail(`${addon} does not exist: build the addon first (npm run build:native)`);

const top = dynamicSection(addon);
// libtorch_cuda.so matches Debian's versioned soname libtorch_cuda.so.2.6 too
for (const lib of mustNeed) {
  if (!top.needed.some((n) => n === lib || n.startsWith(`${lib}.`))) fail(`${addon} does not need ${lib}; it needs: ${top.needed.join(', ')}`);
}

const sys = systemDirs();
const defined = new Set();
const missing = [];
const seen = new Set();
const queue = top.needed.map((n) => ({ name: n, paths: top.paths }));
while (queue.length) {
  const { name, paths } = queue.shift();
  if (seen.has(name)) continue;
  seen.add(name);
  const file = [...paths, ...sys].map((d) => path.join(d, name)).find((f) => fs.existsSync(f));
  if (!file) {
    missing.push(name);
    continue;
  }
  for (const s of symbols(file, 'defined').keys()) defined.add(s);
  const dyn = dynamicSection(fs.realpathSync(file));
  for (const n of dyn.needed) queue.push({ name: n, paths: dyn.paths.length ? dyn.paths : paths });
}

const unresolved = [];
for (const [name, type] of symbols(addon, 'undefined')) {
  if (type === 'w' || type === 'v') continue; // weak: may stay undefined
  if (/^(napi_|node_api_)/.test(name)) continue; // Node's N-API, provided by the node binary
  if (!defined.has(name)) unresolved.push(name);
}
console.log(`${addon}: needs ${top.needed.join(', ')}`);
if (missing.length) console.log(`not on this machine (not loadable here, symbols not checked): ${missing.join(', ')}`);
if (unresolved.length) {
  fail(`${unresolved.length} undefined symbol(s) found in none of the libraries it needs, e.g.\n  ` +
    unresolved.slice(0, 10).map((s) => { try { return run('c++filt', [s]).trim(); } catch { return s; } }).join('\n  '));
}
console.log(`every symbol the addon uses is defined in the libraries it needs (${seen.size} libraries searched)`);
