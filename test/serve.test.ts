// `mmtrain serve`: the HTTP API's predictions equal `mmtrain predict`'s (same collation and forward pass),
// concurrent requests share forward passes, every bad input gets a 4xx naming the problem and the server keeps
// serving, and the command binds loopback by default and stops cleanly on SIGTERM.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { generateSynthetic, listCheckpoints, loadPredictor, resolveConfig, train } from '../src/index.js';
import { predictManifest } from '../src/train/inference.js';
import { predictionServer } from '../src/serve/server.js';
import { DynamicBatcher } from '../src/serve/batcher.js';
import { ROOT, tinyModel } from './helpers.js';

const CLI = join(ROOT, 'dist', 'src', 'cli', 'main.js');

let fixture: Promise<{ dir: string; ckpt: string }> | null = null;
function setup() {
  fixture ??= (async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mmtrain-serve-'));
    await generateSynthetic({ out: join(dir, 'data'), n: 40, seed: 5, imageSize: 16 });
    const r = await train(resolveConfig({
      name: 'x', out: join(dir, 'runs'), seed: 1, model: tinyModel(), data: { train: join(dir, 'data', 'train.jsonl') },
      train: { maxSteps: 3, batchSize: 4 }, log: { progress: 'none' },
    }), { print: () => {} });
    return { dir, ckpt: listCheckpoints(r.runDir).pop()! };
  })();
  return fixture;
}

const post = (url: string, body: unknown, type = 'application/json') =>
  fetch(url, { method: 'POST', headers: { 'Content-Type': type }, body: typeof body === 'string' || body instanceof Uint8Array ? body : JSON.stringify(body) });

test('serve: predictions over HTTP equal mmtrain predict\'s, concurrent requests share forward passes, /v1/metadata and /healthz answer', async () => {
  const { dir, ckpt } = await setup();
  const manifest = join(dir, 'data', 'test.jsonl');
  const rows = readFileSync(manifest, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { image: string; text: string });
  const p = loadPredictor(ckpt, { device: 'cpu' });
  const s = predictionServer(p, { maxBatch: 8, maxWaitMs: 30 });
  try {
    const want = await predictManifest(p, manifest);
    const { port, address } = await s.listen(0, '127.0.0.1');
    const url = `http://${address}:${port}`;
    const b64 = rows.map((r) => readFileSync(join(dir, 'data', r.image)).toString('base64'));
    // one pair per request, all at once
    const single = await Promise.all(rows.map(async (r, i) => {
      const res = await post(`${url}/v1/predict`, { image: b64[i], text: r.text });
      assert.equal(res.status, 200);
      return ((await res.json()) as { predictions: typeof want }).predictions[0]!;
    }));
    assert.ok(s.stats.batches < rows.length && s.stats.largest > 1, `dynamic batching: ${rows.length} requests ran in ${s.stats.batches} batches (largest ${s.stats.largest})`);
    // many pairs in one request (more than maxBatch: split over batches, answered in order), with a data: URL
    const many = (await (await post(`${url}/v1/predict`, { inputs: rows.map((r, i) => ({ image: `data:image/png;base64,${b64[i]}`, text: r.text })) })).json()) as { predictions: typeof want };
    // the image's bytes as the body, the text in the query
    const raw = await fetch(`${url}/v1/predict?text=${encodeURIComponent(rows[0]!.text)}`, { method: 'POST', headers: { 'Content-Type': 'image/png' }, body: readFileSync(join(dir, 'data', rows[0]!.image)) });
    const rawPred = ((await raw.json()) as { predictions: typeof want }).predictions[0]!;
    for (const [name, got] of [['single', single], ['many', many.predictions], ['raw', [rawPred]]] as const) {
      got.forEach((g, i) => {
        assert.equal(g.label, want[i]!.label, `${name} #${i}`);
        for (const l of p.info.labels) assert.ok(Math.abs(g.probabilities[l]! - want[i]!.probabilities[l]!) < 1e-5, `${name} #${i} ${l}: ${g.probabilities[l]} vs ${want[i]!.probabilities[l]}`);
      });
    }
    assert.equal(many.predictions.length, rows.length);
    const meta = (await (await fetch(`${url}/v1/metadata`)).json()) as { labels: string[]; preprocessing: { image: { size: number; mean: number[] } }; limits: { max_items: number } };
    assert.deepEqual(meta.labels, p.info.labels);
    assert.equal(meta.preprocessing.image.size, 16);
    assert.equal(meta.limits.max_items, 64);
    assert.deepEqual(await (await fetch(`${url}/healthz`)).json(), { status: 'ok', predictions: 2 * rows.length + 1, batches: s.stats.batches });
  } finally {
    await s.close();
    p.dispose();
  }
});

test('serve: bad input gets a 4xx naming the problem, and the server goes on serving', async () => {
  const { dir, ckpt } = await setup();
  const p = loadPredictor(ckpt, { device: 'cpu' });
  const s = predictionServer(p, { maxBodyBytes: 200_000, maxPixels: 1_000_000, maxTextChars: 100, maxItems: 4 });
  try {
    const { port } = await s.listen(0, '127.0.0.1');
    const url = `http://127.0.0.1:${port}`;
    const row = JSON.parse(readFileSync(join(dir, 'data', 'test.jsonl'), 'utf8').split('\n')[0]!) as { image: string; text: string };
    const png = readFileSync(join(dir, 'data', row.image));
    const good = { image: png.toString('base64'), text: row.text };
    const huge = await sharp({ create: { width: 2000, height: 1000, channels: 3, background: '#888' } }).png().toBuffer();
    const cases: [string, () => Promise<Response>, number, RegExp][] = [
      ['invalid JSON', () => post(`${url}/v1/predict`, '{"image": '), 400, /body: not valid JSON/],
      ['a JSON array', () => post(`${url}/v1/predict`, [good]), 400, /expected a JSON object .* received an array/],
      ['neither image nor inputs', () => post(`${url}/v1/predict`, { text: 'x' }), 400, /received neither "image" nor "inputs"/],
      ['no text', () => post(`${url}/v1/predict`, { image: good.image }), 400, /body\.text: expected a string, received nothing/],
      ['text not a string', () => post(`${url}/v1/predict`, { image: good.image, text: 5 }), 400, /body\.text: expected a string, received number/],
      ['bad base64', () => post(`${url}/v1/predict`, { image: 'not base64!!', text: 'x' }), 400, /body\.image: not valid base64/],
      ['image not a string', () => post(`${url}/v1/predict`, { inputs: [good, { image: 3, text: 'x' }] }), 400, /inputs\[1\]\.image: expected the image as a base64 string, received number/],
      ['empty inputs', () => post(`${url}/v1/predict`, { inputs: [] }), 400, /inputs: expected a non-empty array/],
      ['an input not an object', () => post(`${url}/v1/predict`, { inputs: ['x'] }), 400, /inputs\[0\]: expected an object/],
      ['not an image', () => post(`${url}/v1/predict`, { image: Buffer.from('hello world, not an image').toString('base64'), text: 'x' }), 422, /body\.image: not a decodable image/],
      ['truncated PNG', () => post(`${url}/v1/predict`, { inputs: [good, { image: png.subarray(0, png.length >> 1).toString('base64'), text: 'x' }] }), 422, /inputs\[1\]\.image: .*(truncated|corrupt|decode)/],
      ['empty image', () => post(`${url}/v1/predict`, { image: '', text: 'x' }), 400, /body\.image: empty/],
      ['too many pixels', () => post(`${url}/v1/predict`, { image: huge.toString('base64'), text: 'x' }), 413, /2000x1000 is 2000000 pixels, over the limit of 1000000 \(serve --max-pixels\)/],
      ['text too long', () => post(`${url}/v1/predict`, { image: good.image, text: 'a'.repeat(101) }), 413, /body\.text: 101 characters, over the limit of 100/],
      ['too many pairs', () => post(`${url}/v1/predict`, { inputs: Array(5).fill(good) }), 413, /inputs: 5 pairs, over the limit of 4 per request/],
      ['body too large', () => post(`${url}/v1/predict`, { image: Buffer.alloc(300_000).toString('base64'), text: 'x' }), 413, /body: .*over the limit of 200000/],
      ['wrong content type', () => post(`${url}/v1/predict`, 'hello', 'text/plain'), 415, /Content-Type "text\/plain": expected application\/json/],
      ['raw bytes without text', () => post(`${url}/v1/predict`, png, 'image/png'), 400, /request\.text: expected a string, received nothing/],
      ['GET on predict', () => fetch(`${url}/v1/predict`), 405, /method not allowed \(POST only\)/],
      ['unknown route', () => fetch(`${url}/v2/nope`), 404, /\/v2\/nope: no such route/],
    ];
    for (const [name, send, status, pattern] of cases) {
      const res = await send();
      const body = (await res.json()) as { error: { status: number; message: string } };
      assert.equal(res.status, status, `${name}: ${JSON.stringify(body)}`);
      assert.equal(body.error.status, status);
      assert.match(body.error.message, pattern, name);
    }
    // a malformed request line: 400 from the HTTP parser, the process unharmed
    const reply = await new Promise<string>((resolve, reject) => {
      const sock = connect(port, '127.0.0.1', () => sock.write('NOT HTTP AT ALL\r\n\r\n'));
      let got = '';
      sock.on('data', (d) => (got += d.toString()));
      sock.on('end', () => resolve(got));
      sock.on('error', reject);
    });
    assert.match(reply, /^HTTP\/1\.1 400/);
    // still serving, and no forward pass ran for the rejected requests
    assert.equal(s.stats.items, 0);
    const ok = await post(`${url}/v1/predict`, good);
    assert.equal(ok.status, 200);
    assert.equal(((await ok.json()) as { predictions: unknown[] }).predictions.length, 1);
  } finally {
    await s.close();
    p.dispose();
  }
});

test('the dynamic batcher: batches fill up to maxBatch, large requests split in order, a failing batch fails only its requests', async () => {
  const seen: number[][] = [];
  const b = new DynamicBatcher<number, number>((xs) => {
    seen.push(xs);
    if (xs.includes(-1)) throw new Error('bad item');
    return xs.map((x) => x * 10);
  }, { maxBatch: 4, maxWaitMs: 20 });
  const [a, c, d] = await Promise.all([b.submit([1, 2]), b.submit([3, 4, 5, 6, 7]), b.submit([8])]);
  assert.deepEqual([a, c, d], [[10, 20], [30, 40, 50, 60, 70], [80]]);
  assert.deepEqual(seen, [[1, 2, 3, 4], [5, 6, 7, 8]]);
  const bad = b.submit([-1]);
  const fine = b.submit([9]);
  await assert.rejects(bad, /bad item/);
  // a request in the same batch as a failing item fails with it; later requests run
  await fine.catch(() => {});
  assert.deepEqual(await b.submit([11]), [110]);
  await b.close();
  await assert.rejects(b.submit([1]), /shutting down/);
  assert.throws(() => new DynamicBatcher((x) => x, { maxBatch: 0, maxWaitMs: 1 }), /maxBatch/);
});

test('mmtrain serve: binds 127.0.0.1 by default, answers, and stops cleanly on SIGTERM', async () => {
  const { ckpt } = await setup();
  const child = spawn(process.execPath, [CLI, '--threads', '1', 'serve', ckpt, '--port', '0', '--device', 'cpu'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((r) => child.on('close', (code) => r(code)));
  try {
    const t0 = Date.now();
    while (!/http:\/\/[^ ]+:\d+/.test(out) && Date.now() - t0 < 30000 && child.exitCode === null) await new Promise((r) => setTimeout(r, 50));
    const url = /(http:\/\/[^ ]+:\d+)/.exec(out)?.[1];
    assert.ok(url, `no address printed: ${out} ${err}`);
    assert.match(url, /^http:\/\/127\.0\.0\.1:/);
    assert.deepEqual(await (await fetch(`${url}/healthz`)).json(), { status: 'ok', predictions: 0, batches: 0 });
    child.kill('SIGTERM');
    assert.equal(await exited, 0, err);
    assert.match(err, /stopped after 0 predictions/);
  } finally {
    child.kill('SIGKILL');
  }
});
