// `mmtrain export --format web` in headless Chromium (playwright-core, Debian's chromium): the page's token ids equal
// mmtrain's on 1,000 strings (accents, CJK, emoji, long and empty texts); its pixels equal the Node pipeline's on
// PNGs; 50 test pairs get mmtrain predict's labels and probabilities; the form works; no request leaves the folder.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { extname, join, normalize } from 'node:path';
import { generateSynthetic, listCheckpoints, loadPredictor, resolveConfig, train } from '../src/index.js';
import { decodeImage } from '../src/data/image.js';
import { TextTokenizer } from '../src/data/tokenizer.js';
import { predictManifest } from '../src/train/inference.js';
import { FIXTURES, ROOT, tinyModel } from './helpers.js';

const CLI = join(ROOT, 'dist', 'src', 'cli', 'main.js');
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const skip = !existsSync(CHROMIUM) && !process.env.CI ? `no browser at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH)` : false;

/** 1,000 strings: words, accents, CJK, emoji (with modifiers and joiners), punctuation, long and empty texts. */
function corpus(): string[] {
  let s = 12345;
  const rnd = () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32);
  const pick = <T>(xs: T[]) => xs[Math.floor(rnd() * xs.length)]!;
  const parts = [
    'a', 'red', 'circle', 'The', 'QUICK', 'brown', 'fox', "don't", 'e-mail', '3.14', '2026', 'naïve', 'café', 'Ångström', 'façade', 'über',
    'niño', 'Σίσυφος', 'Москва', 'עברית', 'العربية', '漢字', '日本語のテキスト', '한국어', '中文分词测试', '👍', '👍🏽', '👨‍👩‍👧', '🇫🇷', '❤️', '…', '—', '¿qué?',
    '(parens)', '[brackets]', '#hash', '@user', 'http://example.com/x?y=1', '\t', '  ', 'ﬁ', 'Ⅻ', 'x²', 'ｆｕｌｌｗｉｄｔｈ', 'e\u0301', '\u200b', 'COMBINÉ',
  ];
  const out: string[] = ['', ' ', '\n', '👍', '漢', 'é'];
  while (out.length < 1000) {
    const n = rnd() < 0.05 ? 200 + Math.floor(rnd() * 300) : 1 + Math.floor(rnd() * 12); // some far past maxLength
    out.push(Array.from({ length: n }, () => pick(parts)).join(rnd() < 0.8 ? ' ' : ''));
  }
  return out;
}

/** A static server for the export folder that records every request. */
async function serveFolder(dir: string) {
  const requests: { path: string; status: number }[] = [];
  const types: Record<string, string> = { '.html': 'text/html', '.js': 'text/javascript', '.mjs': 'text/javascript', '.json': 'application/json', '.wasm': 'application/wasm', '.onnx': 'application/octet-stream' };
  const server = createServer((req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname)).replace(/^(\.\.[/\\])+/, '');
    const file = join(dir, path);
    const ok = file.startsWith(dir) && existsSync(file) && !path.endsWith('/');
    requests.push({ path, status: ok ? 200 : 404 });
    if (!ok) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'Content-Type': types[extname(file)] ?? 'application/octet-stream' }).end(readFileSync(file));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, requests, close: () => new Promise((r) => server.close(r)) };
}

test('export --format web in headless Chromium: tokens, pixels and predictions as mmtrain\'s; the form; no request outside the folder', { skip }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mmtrain-web-'));
  await generateSynthetic({ out: join(dir, 'data'), n: 560, seed: 8, imageSize: 16 });
  const r = await train(resolveConfig({
    name: 'web', out: join(dir, 'runs'), seed: 1, model: tinyModel(), data: { train: join(dir, 'data', 'train.jsonl') },
    train: { maxSteps: 30, batchSize: 8 }, log: { progress: 'none' },
  }), { print: () => {} });
  const ckpt = listCheckpoints(r.runDir).pop()!;
  const out = join(dir, 'web');
  const stdout = execFileSync(process.execPath, [CLI, '--threads', '1', 'export', ckpt, '--format', 'web', '--out', out], { encoding: 'utf8' });
  assert.match(stdout, /wrote .*web: index\.html and the model \(\d+ files, \d+\.\d MiB\)/);
  assert.deepEqual(readdirSync(out).sort(), ['config.json', 'index.html', 'mmtrain.json', 'model.onnx', 'page.js', 'preprocess.js', 'tokenizer.json', 'vendor']);

  const p = loadPredictor(ckpt, { device: 'cpu' });
  const manifest = join(dir, 'data', 'test.jsonl');
  const rows = readFileSync(manifest, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { image: string; text: string }).slice(0, 50);
  assert.equal(rows.length, 50);
  const want = (await predictManifest(p, manifest)).slice(0, 50);
  const server = await serveFolder(out);
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'] });
  try {
    const page = await browser.newPage();
    const errors: string[] = [];
    const urls: string[] = [];
    page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
    page.on('pageerror', (e) => errors.push(String(e)));
    page.on('request', (q) => urls.push(q.url()));
    await page.goto(`${server.url}/index.html`);
    await page.evaluate(() => (globalThis as any).mmtrain.ready);
    await page.waitForFunction(() => !(globalThis as any).document.getElementById('predict').disabled);

    // token ids: the browser's against mmtrain's TextTokenizer (the same tokenizer.json), truncation included
    const texts = corpus();
    const tok = TextTokenizer.fromFile(join(out, 'tokenizer.json'));
    const browserIds = await page.evaluate(async (ts) => Promise.all(ts.map((t) => (globalThis as any).mmtrain.encode(t))), texts) as number[][];
    const differing = texts.filter((t, i) => JSON.stringify(browserIds[i]) !== JSON.stringify(tok.encode(t, p.info.maxLength).ids));
    assert.deepEqual(differing, [], `${differing.length} of ${texts.length} strings tokenized differently`);
    assert.ok(browserIds.some((ids) => ids.length === p.info.maxLength), 'some texts were truncated');

    // pixels: PNGs (lossless: decoding is exact everywhere) resized by the page as by the Node pipeline
    for (const f of ['stripes-text.png', 'odd-crop.png']) {
      const bytes = readFileSync(join(FIXTURES, 'images', f));
      for (const cfg of [p.image, { ...p.image, size: 37 }, { ...p.image, resize: 'exact' as const, size: 24 }, { ...p.image, resample: 'bicubic' as const, size: 29 }, { ...p.image, resize: 'exact' as const, resample: 'bicubic' as const, size: 20 }, { ...p.image, resize: 'exact' as const, resample: 'bicubic' as const, size: 16, resizeSize: 21 }, { ...p.image, size: 16, resizeSize: 19 }]) {
        const node = await decodeImage(bytes, f, cfg);
        const browserPx = await page.evaluate(async ({ b64, c }) => {
          const { decodeRgb, resizeForModel } = await import('./preprocess.js' as string);
          const data = Uint8Array.from(atob(b64), (ch) => ch.charCodeAt(0));
          return Array.from(resizeForModel(await decodeRgb(new Blob([data])), c) as Uint8Array);
        }, { b64: bytes.toString('base64'), c: cfg });
        const diff = browserPx.reduce((m, v, i) => Math.max(m, Math.abs(v - node.data[i]!)), 0);
        assert.equal(browserPx.length, node.data.length);
        assert.equal(diff, 0, `${f} at ${cfg.size} (${cfg.resize}, ${cfg.resample}): the page's pixels differ from the Node pipeline's by up to ${diff}`);
      }
    }

    // predictions for 50 test pairs (JPEGs: the browser's decoder may differ from libvips' by a grey level)
    const got = await page.evaluate(async (pairs) => Promise.all(pairs.map(({ b64, text }) =>
      (globalThis as any).mmtrain.predict(Uint8Array.from(atob(b64), (ch) => ch.charCodeAt(0)), text))),
    rows.map((row) => ({ b64: readFileSync(join(dir, 'data', row.image)).toString('base64'), text: row.text }))) as { label: string; probabilities: Record<string, number> }[];
    let same = 0;
    let maxDiff = 0;
    got.forEach((g, i) => {
      if (g.label === want[i]!.label) same++;
      for (const l of p.info.labels) maxDiff = Math.max(maxDiff, Math.abs(g.probabilities[l]! - want[i]!.probabilities[l]!));
    });
    console.log(`# web: ${same}/50 labels as mmtrain predict; probabilities within ${maxDiff.toExponential(2)}`);
    assert.ok(same / 50 >= 0.98, `agreement ${same}/50`);
    assert.ok(maxDiff <= 0.02, `probabilities differ by up to ${maxDiff}`);

    // the form: pick an image, type the caption, press Predict
    await page.setInputFiles('#image', join(dir, 'data', rows[0]!.image));
    await page.fill('#text', rows[0]!.text);
    await page.click('#predict');
    await page.waitForSelector('#result tr.top');
    assert.equal(await page.textContent('#result tr.top td'), got[0]!.label);
    assert.match((await page.textContent('#status'))!, /^Predicted ".+" in \d+ ms\.$/);

    assert.deepEqual(errors, []);
    const outside = urls.filter((u) => !u.startsWith(`${server.url}/`) && !u.startsWith('blob:') && !u.startsWith('data:'));
    assert.deepEqual(outside, [], 'requests outside the folder');
    assert.deepEqual(server.requests.filter((q) => q.status !== 200), [], 'every request is for a file of the folder');
  } finally {
    await browser.close();
    await server.close();
    p.dispose();
  }
});
