// Safetensors: round trips for every dtype, header validation with messages naming the file and field, a seeded
// fuzz of malformed headers (always a clear error, never a crash), and atomic writes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  MmtrainError, decodeSafetensors, encodeSafetensors, loadSafetensors, readSafetensorsHeader, saveSafetensors, tensor,
  tidy, memory, randn, type Tensor,
} from '../src/index.js';
import { ROOT } from './helpers.js';

function file(header: unknown, data = Buffer.alloc(0), rawHeader?: string): Buffer {
  const json = Buffer.from(rawHeader ?? JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([len, json, data]);
}

test('round trip of every dtype with metadata, and a HF-written layout', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mmtrain-st-'));
  tidy(() => {
    const tensors = {
      f32: randn([3, 4]), f64: tensor([1.5, -2], { dtype: 'float64' }), f16: tensor([0.5, 2], { dtype: 'float16' }),
      bf16: tensor([1, -3], { dtype: 'bfloat16' }), i64: tensor([1, -2, 3], { dtype: 'int64' }),
      i32: tensor([7], { dtype: 'int32' }), u8: tensor([255, 0], { dtype: 'uint8' }), b: tensor([true, false], { dtype: 'bool' }),
      scalar: tensor(3), empty: tensor([], { shape: [0, 4] }),
    };
    const path = join(dir, 'model.safetensors');
    saveSafetensors(path, tensors, { format: 'pt' });
    const { tensors: back, metadata } = loadSafetensors(path);
    assert.deepEqual(metadata, { format: 'pt' });
    for (const [k, t] of Object.entries(tensors)) {
      const u = back.get(k)!;
      assert.equal(u.dtype, t.dtype, k);
      assert.deepEqual(u.shape, t.shape, k);
      assert.deepEqual(u.toNumbers(), t.toNumbers(), k);
    }
    const header = readSafetensorsHeader(path);
    assert.deepEqual(header.tensors.get('f32')!.shape, [3, 4]);
    // a file written by PyTorch's side (the parity fixture) loads too
    assert.ok(loadSafetensors(join(import.meta.dirname ?? '.', '..', '..', 'test', 'fixtures', 'parity.safetensors')).tensors.size > 100);
  });
  rmSync(dir, { recursive: true });
});

test('malformed files give errors naming the file and the field', () => {
  const f32 = (shape: number[], offs: [number, number]) => ({ dtype: 'F32', shape, data_offsets: offs });
  const cases: [Buffer, RegExp][] = [
    [Buffer.alloc(3), /x\.safetensors: invalid safetensors file: expected at least 8 bytes/],
    [file(null, undefined, '{"a": '), /header is not valid JSON/],
    [(() => { const b = Buffer.alloc(16); b.writeBigUInt64LE(1n << 40n); return b; })(), /header length 1099511627776 is larger than the 100000000-byte limit/],
    [(() => { const b = Buffer.alloc(16); b.writeBigUInt64LE(100n); return b; })(), /header length 100 runs past the end of the file \(16 bytes\)/],
    [file([1, 2]), /header must be a JSON object/],
    [file({ w: { dtype: 'F8', shape: [1], data_offsets: [0, 1] } }, Buffer.alloc(1)), /tensor "w": dtype "F8" is not supported/],
    [file({ w: { dtype: 'F32', shape: [-1], data_offsets: [0, 4] } }, Buffer.alloc(4)), /tensor "w": shape must be an array of non-negative integers/],
    [file({ w: { dtype: 'F32', shape: [2], data_offsets: [0] } }, Buffer.alloc(8)), /tensor "w": data_offsets must be \[begin, end\]/],
    [file({ w: f32([2], [0, 4]) }, Buffer.alloc(4)), /tensor "w": data_offsets \[0, 4\] hold 4 bytes but shape \[2\] of F32 needs 8/],
    [file({ w: f32([2], [0, 8]) }, Buffer.alloc(4)), /tensor "w": data_offsets end 8 is past the end of the data \(4 bytes\)/],
    [file({ a: f32([1], [0, 4]), b: f32([1], [2, 6]) }, Buffer.alloc(8)), /tensor "b": data_offsets begin 2 overlaps the previous tensor/],
    [file({ a: f32([1], [4, 8]) }, Buffer.alloc(8)), /tensor "a": data_offsets begin 4 leaves a gap \(expected 0\)/],
    [file({ a: f32([1], [0, 4]) }, Buffer.alloc(12)), /the tensors cover 4 bytes of data but the file holds 12/],
    [file({ __metadata__: { a: 1 } }), /__metadata__ must be an object of string values/],
    [file({ w: 5 }), /tensor "w": expected an object with dtype, shape, data_offsets/],
  ];
  for (const [buf, re] of cases) {
    assert.throws(() => decodeSafetensors(buf, 'x.safetensors'), (e: Error) => e instanceof MmtrainError && re.test(e.message) && e.message.startsWith('x.safetensors'), re.source);
  }
  assert.throws(() => loadSafetensors('/nonexistent/model.safetensors'), /\/nonexistent\/model\.safetensors: cannot read safetensors file/);
});

/** A small deterministic PRNG (mulberry32) so fuzz cases repeat. */
function prng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Mutates a valid file: header length, JSON bytes, offsets, dtypes, shapes, truncation. */
export function mutate(valid: Buffer, rnd: () => number): Buffer {
  const b = Buffer.from(valid);
  const headerLen = Number(b.readBigUInt64LE(0));
  const kind = Math.floor(rnd() * 6);
  switch (kind) {
    case 0: b.writeBigUInt64LE(BigInt(Math.floor(rnd() * (headerLen * 2 + 16)))); return b;
    case 1: { const i = 8 + Math.floor(rnd() * headerLen); b[i] = Math.floor(rnd() * 256); return b; }
    case 2: return b.subarray(0, Math.floor(rnd() * b.length));
    default: {
      const h = JSON.parse(b.subarray(8, 8 + headerLen).toString()) as Record<string, any>;
      const keys = Object.keys(h).filter((k) => k !== '__metadata__');
      const e = h[keys[Math.floor(rnd() * keys.length)]!];
      const pick = <T>(xs: T[]) => xs[Math.floor(rnd() * xs.length)]!;
      if (kind === 3) e.data_offsets = [pick([0, 1, 3, 8, 1e9, -4, 2 ** 53, 'x' as never]), pick([0, 4, 16, 7, 1e12, null as never])];
      else if (kind === 4) e.dtype = pick(['F32', 'I64', 'BF16', 'U8', 'F8_E4M3', '', 7 as never, 'BOOL']);
      else e.shape = pick([[], [0], [1e9, 1e9], [-1], [2.5], 'x' as never, [3, 3, 3], [1e15, 1e15, 1e15]]);
      return file(h, b.subarray(8 + headerLen));
    }
  }
}

test('seeded fuzz of malformed safetensors: a clear error or a valid load, never a crash or a leak', () => {
  const valid = Buffer.concat(tidy(() => encodeSafetensors({ a: randn([4, 3]), b: tensor([1, 2], { dtype: 'int64' }), c: tensor([1], { dtype: 'bfloat16' }) })));
  const rnd = prng(20261129);
  const before = memory().liveTensors;
  let errors = 0;
  const N = Number(process.env.MMTRAIN_FUZZ_CASES ?? 500);
  for (let i = 0; i < N; i++) {
    const buf = mutate(valid, rnd);
    try {
      const { tensors } = decodeSafetensors(buf, `case${i}.safetensors`);
      for (const t of tensors.values()) t.dispose();
    } catch (e) {
      assert.ok(e instanceof MmtrainError, `case ${i}: ${(e as Error).stack}`);
      assert.match((e as Error).message, new RegExp(`^case${i}\\.safetensors: invalid safetensors file: `));
      errors++;
    }
  }
  assert.ok(errors > N * 0.5, `only ${errors} of ${N} mutations were rejected`);
  assert.equal(memory().liveTensors, before);
});

// The disk fills up in the middle of a save: a file-size limit (ulimit -f, with SIGXFSZ ignored so that the write
// fails with EFBIG instead of killing the process) stops the new file after 2 KiB. Works as root too.
test('atomic save: a write that fails midway leaves the previous file intact and no temporary file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mmtrain-st-'));
  const path = join(dir, 'w.safetensors');
  tidy(() => saveSafetensors(path, { a: tensor([1, 2]) }));
  const before = readFileSync(path);
  const script = `import('${join(ROOT, 'dist', 'src', 'index.js')}').then((m) => {
    try { m.saveSafetensors(${JSON.stringify(path)}, { a: m.zeros([100000]) }); console.log('saved'); }
    catch (e) { console.log(e.message); process.exit(3); }
  });`;
  const r = spawnSync('bash', ['-c', `trap '' XFSZ; ulimit -f 2; exec "${process.execPath}" --input-type=module -e "$0"`, script], { encoding: 'utf8' });
  assert.equal(r.status, 3, `the save should fail: ${r.stdout}${r.stderr}`);
  assert.match(r.stdout, /w\.safetensors: cannot write safetensors file/);
  assert.deepEqual(readFileSync(path), before);
  assert.deepEqual(readdirSync(dir), ['w.safetensors']);
  rmSync(dir, { recursive: true });
});

test('atomic save: an error while encoding leaves the previous file intact', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mmtrain-st-'));
  const path = join(dir, 'w.safetensors');
  tidy(() => saveSafetensors(path, { a: tensor([1, 2]) }));
  const before = readFileSync(path);
  const gone = tensor([5]);
  gone.dispose();
  assert.throws(() => saveSafetensors(path, { a: gone }), /Tensor was disposed/);
  // a target that is a directory cannot be replaced: the write fails and cleans up its temporary file
  const sub = join(dir, 'sub.safetensors');
  writeFileSync(join(dir, 'keep'), 'x');
  assert.throws(() => tidy(() => saveSafetensors(join(sub, 'x', 'y.safetensors'), { a: tensor([1]) })), /cannot write safetensors file/);
  assert.deepEqual(readFileSync(path), before);
  assert.ok(!existsSync(sub));
  assert.deepEqual(readdirSync(dir).sort(), ['keep', 'w.safetensors']);
  rmSync(dir, { recursive: true });
});

test('a bad entry is refused before the file is touched; tensors are written one at a time in name order', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mmtrain-st-'));
  const path = join(dir, 'm.safetensors');
  tidy(() => saveSafetensors(path, { b: tensor([1, 2, 3]), a: tensor([[4, 5]], { dtype: 'int64' }) }));
  const before = readFileSync(path);
  assert.throws(() => tidy(() => saveSafetensors(path, { a: tensor([9]), b: 3 as unknown as Tensor })), /^MmtrainError: Expected a Tensor for safetensors entry "b" but received number$/);
  assert.deepEqual(readFileSync(path), before);
  assert.deepEqual(readdirSync(dir), ['m.safetensors']);
  // the streamed file equals the in-memory encoding, byte for byte
  tidy(() => assert.deepEqual(Buffer.concat(encodeSafetensors({ b: tensor([1, 2, 3]), a: tensor([[4, 5]], { dtype: 'int64' }) })), before));
  rmSync(dir, { recursive: true });
});

test('F16 and BF16 tensors as PyTorch lays them out (zeros of both signs, subnormals, the limits, inf, NaN), written by the safetensors package itself, load to PyTorch\'s float32 values', () => {
  const { tensors, metadata } = loadSafetensors(join(ROOT, 'test', 'fixtures', 'half.safetensors'));
  assert.deepEqual(metadata, { format: 'pt' });
  assert.deepEqual([...tensors.keys()].sort(), ['bf16', 'bf16.as_f32', 'f16', 'f16.as_f32']);
  for (const [name, dtype] of [['f16', 'float16'], ['bf16', 'bfloat16']] as const) {
    const t = tensors.get(name)!;
    assert.equal(t.dtype, dtype);
    assert.deepEqual(t.shape, [4, 19]);
    const got = tidy(() => t.to('float32').toNumbers());
    const want = tensors.get(`${name}.as_f32`)!.toNumbers();
    assert.equal(got.length, 4 * 19, `${name}: values read back`);
    got.forEach((v, i) => assert.ok(Object.is(v, want[i]) || (Number.isNaN(v) && Number.isNaN(want[i]!)), `${name}[${i}]: ${v} vs PyTorch's ${want[i]}`));
    // and back: saved by mmtrain, the same bytes as PyTorch's
    const dir = mkdtempSync(join(tmpdir(), 'mmtrain-st-'));
    saveSafetensors(join(dir, 'h.safetensors'), { [name]: t });
    const again = loadSafetensors(join(dir, 'h.safetensors')).tensors.get(name)!;
    assert.deepEqual(Buffer.from(again.toBuffer()), Buffer.from(t.toBuffer()));
    rmSync(dir, { recursive: true });
  }
});
