// Durable writes (src/files.ts): a write either replaces the file whole or leaves the previous one as it was, and
// never leaves its temporary file behind. Failures are provoked without permissions (tests may run as root).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeFolder, writeFileAtomic, writeJsonAtomic } from '../src/files.js';

function withDir(fn: (dir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'mmtrain-files-'));
  try {
    fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('a write replaces the previous file whole and leaves only the target in its folder', () => {
  withDir((dir) => {
    const file = join(dir, 'result.json');
    writeFileSync(file, 'old');
    writeFileAtomic(file, 'new contents');
    assert.equal(readFileSync(file, 'utf8'), 'new contents');
    writeFileAtomic(file, new Uint8Array([1, 2, 3]));
    assert.deepEqual([...readFileSync(file)], [1, 2, 3]);
    writeFileAtomic(file, [Buffer.from('a'), Buffer.from(''), Buffer.from('bc')]);
    assert.equal(readFileSync(file, 'utf8'), 'abc');
    writeJsonAtomic(file, { steps: 3 });
    assert.equal(readFileSync(file, 'utf8'), '{\n  "steps": 3\n}\n');
    writeJsonAtomic(file, ['a', 'b'], null);
    assert.equal(readFileSync(file, 'utf8'), '["a","b"]\n');
    assert.deepEqual(readdirSync(dir), ['result.json']);
  });
});

test('a write that fails midway (its data source throws) leaves the previous file intact and no temporary file', () => {
  withDir((dir) => {
    const file = join(dir, 'model.safetensors');
    writeFileSync(file, 'previous');
    function* chunks(): Generator<Uint8Array> {
      yield Buffer.alloc(1 << 20, 7); // some data is on disk before the failure
      throw new Error('entry 2 is not finite');
    }
    assert.throws(() => writeFileAtomic(file, chunks()), /entry 2 is not finite/);
    assert.equal(readFileSync(file, 'utf8'), 'previous');
    assert.deepEqual(readdirSync(dir), ['model.safetensors']);
  });
});

test('a write whose rename fails (a directory in the way of the target) leaves the directory intact and no temporary file', () => {
  withDir((dir) => {
    const target = join(dir, 'summary.json');
    mkdirSync(target);
    writeFileSync(join(target, 'inside'), 'kept');
    assert.throws(() => writeFileAtomic(target, '{}\n'), (e: NodeJS.ErrnoException) => e.syscall === 'rename');
    assert.equal(readFileSync(join(target, 'inside'), 'utf8'), 'kept');
    assert.deepEqual(readdirSync(dir), ['summary.json']);
  });
});

test('a write into a missing folder fails before creating anything', () => {
  withDir((dir) => {
    assert.throws(() => writeFileAtomic(join(dir, 'absent', 'result.json'), '{}'), (e: NodeJS.ErrnoException) => e.code === 'ENOENT');
    assert.deepEqual(readdirSync(dir), []);
  });
});

test('makeFolder makes the missing folders above it, leaves an existing one, and fails (never hangs) where one cannot be made: a file in the way, under a file, in /proc', () => {
  withDir((dir) => {
    const deep = join(dir, 'a', 'b', 'c');
    makeFolder(deep);
    assert.ok(statSync(deep).isDirectory());
    makeFolder(deep); // already there
    makeFolder(`${deep}/`);
    writeFileSync(join(dir, 'file'), 'x');
    assert.throws(() => makeFolder(join(dir, 'file')), { code: 'EEXIST' });
    assert.throws(() => makeFolder(join(dir, 'file', 'sub', 'deeper')), { code: 'ENOTDIR' });
    // Node's mkdirSync(..., { recursive: true }) retries this one forever (mkdir answers ENOENT in /proc)
    assert.throws(() => makeFolder(`/proc/mmtrain-${process.pid}/x/y`), { code: 'ENOENT' });
  });
});
