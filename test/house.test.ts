// The house rules that keep the code easy to change: no import cycles anywhere in src/ (scripts/import-cycles.ts,
// `npm run cycles`), and a trainer loop that knows no encoder's key names.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { findCycles, importGraph } from '../scripts/import-cycles.js';
import { ROOT } from './helpers.js';

test('no import cycles in src/', () => {
  const graph = importGraph(join(ROOT, 'src'));
  assert.ok(graph.size > 50, `read ${graph.size} files`);
  assert.deepEqual(findCycles(graph).map((c) => c.map((f) => f.slice(ROOT.length + 1)).join(' -> ')), []);
});

test('the cycle finder finds a cycle, and one through a re-export', () => {
  const g = new Map([['a', ['b']], ['b', ['c']], ['c', ['a']], ['d', ['a']]]);
  assert.deepEqual(findCycles(g), [['a', 'b', 'c']]);
  assert.deepEqual(findCycles(new Map([['x', ['y']], ['y', []]])), []);
});

test('the training loop and its parts name no BERT or ViT parameter', () => {
  const dir = join(ROOT, 'src', 'train');
  const files = readdirSync(dir).filter((n) => n.endsWith('.ts'));
  assert.ok(files.includes('loop.ts') && files.includes('trainer.ts'), `src/train holds ${files.join(', ')}`);
  for (const f of files) {
    const text = readFileSync(join(dir, f), 'utf8');
    assert.doesNotMatch(text, /LayerNorm\.weight|layernorm_before|\bcls_token|(?<![a-z_])position_embeddings|encoder\\?\.layer\b/, `src/train/${f}`);
  }
});
