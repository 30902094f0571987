// The run config module: `mmtrain init`'s example names every key of the schema (and only keys of it), and importing
// the module (or the command line's) loads no LibTorch (the CLI reads a run's precision there before libgomp loads).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import YAML from 'yaml';
import type { z } from 'zod';
import { ConfigSchema, EXAMPLE_CONFIG, resolveConfig } from '../src/train/config.js';
import { BertConfigOverrides } from '../src/models/bert-config.js';
import { ViTConfigOverrides } from '../src/models/vit-config.js';
import { imageConfig } from '../src/data/image-config.js';
import { checkConfig, formatIssues } from '../src/validation.js';
import { ROOT } from './helpers.js';

/**
 * Every key path of a schema: objects are walked (through defaults, optionals, nullables and unions with an object
 * option); anything else is a leaf. An encoder's overrides are a leaf: their keys are Hugging Face's config fields.
 */
function keyPaths(s: z.ZodType, path = '', out: string[] = []): string[] {
  const def = s.def as { type: string; innerType?: z.ZodType; shape?: Record<string, z.ZodType>; options?: z.ZodType[] };
  if (s === BertConfigOverrides || s === ViTConfigOverrides) {
    out.push(path);
  } else if (def.innerType && ['default', 'prefault', 'optional', 'nullable'].includes(def.type)) {
    keyPaths(def.innerType, path, out);
  } else if (def.type === 'object') {
    for (const [k, v] of Object.entries(def.shape!)) keyPaths(v, path ? `${path}.${k}` : k, out);
  } else if (def.type === 'union' && def.options!.some((o) => o.def.type === 'object')) {
    for (const o of def.options!) if (o.def.type === 'object') keyPaths(o, path, out);
  } else {
    out.push(path);
  }
  return out;
}

/** The key paths a YAML document names, repeated keys included (the example shows alternatives one after another). */
function namedPaths(node: unknown, path = '', out: string[] = []): string[] {
  if (YAML.isMap(node)) {
    for (const item of node.items) {
      const p = path ? `${path}.${String((item.key as YAML.Scalar).value)}` : String((item.key as YAML.Scalar).value);
      out.push(p);
      namedPaths(item.value, p, out);
    }
  }
  return out;
}

/** The example with its commented-out keys (`# key: value`) switched on. */
const uncommented = EXAMPLE_CONFIG.replace(/^(\s*)# ([A-Za-z]\w*:)/gm, '$1$2');

test('the example config is valid as written', () => {
  const c = resolveConfig(YAML.parse(EXAMPLE_CONFIG), 'EXAMPLE_CONFIG');
  assert.equal(c.name, 'my-run');
  assert.equal(c.train.precision, 'fp32');
});

test('the example config names every key of the schema, and only keys of it', () => {
  const doc = YAML.parseDocument(uncommented, { uniqueKeys: false });
  assert.deepEqual(doc.errors, []);
  const named = new Set(namedPaths(doc.contents));
  const keys = keyPaths(ConfigSchema);
  assert.ok(keys.length > 90, `the walk found ${keys.length} keys`);
  const missing = keys.filter((k) => !named.has(k));
  assert.deepEqual(missing, [], `EXAMPLE_CONFIG (src/train/config.ts) does not name ${missing.join(', ')}: add a line for each (commented out when it has no default)`);
  const unknown = [...named].filter((p) => !keys.some((k) => p === k || p.startsWith(`${k}.`) || k.startsWith(`${p}.`)));
  assert.deepEqual(unknown, [], 'EXAMPLE_CONFIG names keys the schema lacks');
  // the commented-out values are valid too (where a key repeats, the last one)
  const r = checkConfig(ConfigSchema, doc.toJS());
  assert.ok(r.success, r.success ? '' : formatIssues(r.error.issues, 'EXAMPLE_CONFIG uncommented'));
});

test('the walk sees a new key: a schema with one more key than the example fails the check', () => {
  const wider = ConfigSchema.extend({ extra: ConfigSchema.shape.log });
  const named = new Set(namedPaths(YAML.parseDocument(uncommented, { uniqueKeys: false }).contents));
  assert.deepEqual(keyPaths(wider).filter((k) => !named.has(k)), ['extra.every', 'extra.tensorboard', 'extra.progress', 'extra.report']);
});

test('image preprocessing settings (a checkpoint\'s, or a library caller\'s) are checked like the run config', () => {
  assert.deepEqual(imageConfig({ size: 32 }).augment, { randomResizedCrop: null, horizontalFlip: 0, colorJitter: null });
  assert.throws(() => imageConfig({ size: 32, resize: 'crop' as never, std: [0.2, 0, 0.2], augment: { flip: 0.5 } as never }, 'best/inference.json'),
    /best\/inference\.json: invalid configuration:\n {2}resize: expected one of "shorter-side", "exact", received "crop"\n {2}std\.1: expected a number > 0, received number 0\n {2}augment: unknown key "flip" .*\(known keys: randomResizedCrop, horizontalFlip, colorJitter\)/);
});

test('importing the run config, or the command line, loads no LibTorch; importing the tensors does', () => {
  // a fresh process records every native addon it opens
  const script = `
    const opened = [];
    const dlopen = process.dlopen;
    process.dlopen = (m, f, ...rest) => { opened.push(f); return dlopen.call(process, m, f, ...rest); };
    await import(${JSON.stringify(join(ROOT, 'dist', 'src', 'train', 'config.js'))});
    await import(${JSON.stringify(join(ROOT, 'dist', 'src', 'cli', 'commands.js'))});
    const before = opened.filter((f) => f.includes('mmtrain_native'));
    await import(${JSON.stringify(join(ROOT, 'dist', 'src', 'tensor', 'native.js'))});
    console.log(JSON.stringify({ before, after: opened.filter((f) => f.includes('mmtrain_native')) }));
  `;
  const out = JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' }).trim().split('\n').pop()!);
  assert.deepEqual(out.before, [], `loaded before LibTorch should: ${out.before.join(', ')}`);
  assert.equal(out.after.length, 1, 'the check sees the addon when it does load');
});
