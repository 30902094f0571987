// The bad-input corpus (test/fixtures/bad/, made by gen_bad.py): every case ends in a clear error naming the file
// and line or field, or in documented correct handling; never a crash, a hang or a silent wrong result.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import {
  FusionClassifier, MmtrainError, TextTokenizer, bundledTokenizer, imageConfig, loadConfig, loadImage, loadSafetensors, readManifest,
} from '../src/index.js';
import { FIXTURES, ROOT } from './helpers.js';

const BAD = join(FIXTURES, 'bad');
const cfg = imageConfig({ size: 16, resize: 'exact' });
const px = (data: Uint8Array, x: number, y: number) => Array.from(data.slice((y * 16 + x) * 3, (y * 16 + x) * 3 + 3));
const near = (a: number[], b: number[], tol = 40) => a.length === b.length && a.every((v, i) => Math.abs(v - b[i]!) <= tol);

/** Asserts an MmtrainError (never a native crash or a plain TypeError) whose message starts with the file. */
async function rejects(fn: () => unknown, file: string, re: RegExp) {
  await assert.rejects(async () => fn(), (e: Error) => {
    assert.ok(e instanceof MmtrainError, `${file}: ${e.constructor.name}: ${e.message}`);
    assert.ok(e.message.includes(join(BAD, file)), `${file}: the message names the file: ${e.message}`);
    assert.match(e.message, re);
    return true;
  });
}

const IMAGE_ERRORS: [string, RegExp][] = [
  ['truncated.jpg', /image data is truncated or corrupt/],
  ['zero-byte.jpg', /image file is empty \(0 bytes\)/],
  ['random-bytes.jpg', /not an image \(unsupported or unrecognised format\)/],
  ['bad-crc.png', /image data is truncated or corrupt/],
  ['pixel-bomb.png', /image is over the pixel limit of 100000000 \(data\.image\.maxPixels\)/],
];
for (const [file, re] of IMAGE_ERRORS) test(`bad image ${file}: a clear error naming the file`, () => rejects(() => loadImage(join(BAD, file), cfg), file, re));

test('odd but valid images decode to 8-bit sRGB RGB with the right content', async () => {
  const red = [220, 20, 20];
  const white = [255, 255, 255];
  // CMYK JPEG: colours converted, not inverted
  assert.ok(near(px((await loadImage(join(BAD, 'cmyk.jpg'), cfg)).data, 0, 8), red));
  // 16-bit grayscale PNG: 60000 / 65535 of full scale on the left, replicated to three channels
  const g16 = (await loadImage(join(BAD, '16bit.png'), cfg)).data;
  assert.deepEqual(px(g16, 0, 8), [234, 234, 234]);
  assert.ok(px(g16, 15, 8)[0]! < 10);
  // grayscale JPEG to RGB
  const g = px((await loadImage(join(BAD, 'grayscale.jpg'), cfg)).data, 0, 8);
  assert.ok(g[0] === g[1] && g[1] === g[2]);
  // RGBA: the alpha channel is dropped, not composited to black
  assert.ok(near(px((await loadImage(join(BAD, 'rgba.png'), cfg)).data, 0, 8), red));
  // EXIF orientation 6: the 40x20 image (left half red) is turned upright, so its top right is red, bottom right white
  const ex = (await loadImage(join(BAD, 'exif-rotated.jpg'), cfg)).data;
  assert.ok(near(px(ex, 15, 1), red), `top right ${px(ex, 15, 1)}`);
  assert.ok(near(px(ex, 15, 14), white), `bottom right ${px(ex, 15, 14)}`);
  // animated GIF: the first frame (blue)
  assert.ok(near(px((await loadImage(join(BAD, 'animated.gif'), cfg)).data, 8, 8), [0, 0, 255]));
});

test('an SVG referring to a local file, a file URL and a web URL is drawn without reading or fetching any of them', async () => {
  // secret.png (green) sits next to the SVG; images are decoded from memory, so no reference resolves
  const im = (await loadImage(join(BAD, 'external.svg'), cfg)).data;
  for (const [x, y] of [[0, 0], [8, 8], [15, 15]] as const) assert.deepEqual(px(im, x, y), [255, 255, 255]);
});

test('manifests: every problem by file and line; long texts truncated; skip mode', () => {
  const manifestError = (file: string, re: RegExp, opts = {}) => assert.throws(() => readManifest(join(BAD, file), opts), (e: Error) => {
    assert.ok(e instanceof MmtrainError);
    assert.match(e.message, re);
    return true;
  });
  manifestError('invalid-utf8.jsonl', /invalid-utf8\.jsonl:1: invalid UTF-8 in this line/);
  manifestError('malformed.jsonl', /4 problems in the manifest:\n.*malformed\.jsonl:2: invalid JSON.*\n.*malformed\.jsonl:3: expected a JSON object/);
  manifestError('malformed.csv', /malformed\.csv:4: malformed CSV \(Quote Not Closed/);
  manifestError('unknown-label.jsonl', /unknown-label\.jsonl:2: unknown label "giraffe" \(known: cat, dog\)/, { labels: ['cat', 'dog'] });
  manifestError('escaping-path.jsonl', /escaping-path\.jsonl:1: image path "\.\.\/\.\.\/\.\.\/\.\.\/\.\.\/\.\.\/etc\/hostname" escapes the data root[^\n]*\n.*escaping-path\.jsonl:2: image path "\/etc\/hostname"/);
  manifestError('missing-image.jsonl', /missing-image\.jsonl:1: image not found: nowhere\.jpg/);
  // skip mode: the bad lines are counted, the good ones kept
  const m = readManifest(join(BAD, 'invalid-utf8.jsonl'), { onBadSample: 'skip' });
  assert.equal(m.samples.length, 1);
  assert.equal(m.skipped.length, 1);
  // a 50,000-word caption is read whole and truncated to maxLength tokens by the tokenizer, quickly
  const long = readManifest(join(BAD, 'long-text.jsonl'));
  assert.equal(long.samples[0]!.text.split(' ').length, 50000);
  const tok = TextTokenizer.fromFile(bundledTokenizer());
  const t0 = performance.now();
  const enc = tok.encode(long.samples[0]!.text, 128);
  assert.equal(enc.ids.length, 128);
  assert.ok(performance.now() - t0 < 5000);
});

test('configurations: wrong types, unknown keys and broken YAML name the file, the key path and the fix', () => {
  assert.throws(() => loadConfig(join(BAD, 'wrong-types.yaml')), /wrong-types\.yaml: invalid configuration:\n\s+train\.epochs: expected a number > 0, received number -1\n\s+train\.batchSize: expected an integer, received number 2\.5\n\s+train\.lr: expected a number, received "fast"/);
  assert.throws(() => loadConfig(join(BAD, 'unknown-keys.yaml')), /model: unknown key "fusion" — remove it or check the spelling \(did you mean "fusion_type"\?\)[\s\S]*unknown key "trian" — remove it or check the spelling \(did you mean "train"\?\)/);
  assert.throws(() => loadConfig(join(BAD, 'not-yaml.yaml')), /not-yaml\.yaml:3: cannot parse the config/);
});

test('a checkpoint of another architecture is refused, naming its config', () => {
  assert.throws(() => FusionClassifier.fromPretrained(join(BAD, 'bert-checkpoint')), /bert-checkpoint\/config\.json: model_type is "bert", not an mmtrain fusion model/);
});

test('malformed safetensors and pickles: the file and the field, never an unpickle', () => {
  const cases: [string, RegExp][] = [
    ['st-header-too-long.safetensors', /header length 1099511627776 is larger than the 100000000-byte limit/],
    ['st-bad-json.safetensors', /header is not valid JSON/],
    ['st-bad-dtype.safetensors', /tensor "a": dtype "Q7" is not supported/],
    ['st-offsets-past-end.safetensors', /tensor "a": data_offsets end 16 is past the end of the data \(8 bytes\)/],
    ['st-shape-mismatch.safetensors', /tensor "a": data_offsets \[0, 16\] hold 16 bytes but shape \[3\] of F32 needs 12/],
    ['st-pickle.bin', /this is a Python pickle \(torch\.save \/ pytorch_model\.bin\), which mmtrain never loads; convert it to safetensors/],
    ['torch-save.pt', /this is a zip archive \(torch\.save's format, holding a pickle\), which mmtrain never loads/],
  ];
  for (const [file, re] of cases) {
    assert.throws(() => loadSafetensors(join(BAD, file)), (e: Error) => e instanceof MmtrainError && e.message.startsWith(`${join(BAD, file)}: invalid safetensors file: `) && re.test(e.message), file);
  }
});

test('bad input on the command line: one clear line, a non-zero exit, no stack trace or native crash', () => {
  const cli = join(ROOT, 'dist', 'src', 'cli', 'main.js');
  const fail = (args: string[], re: RegExp) => assert.throws(() => execFileSync(process.execPath, [cli, ...args], { stdio: 'pipe', encoding: 'utf8' }), (e: { status: number; stderr: string; signal: string | null }) => {
    assert.equal(e.signal, null, 'not killed by a signal');
    assert.equal(e.status, 1);
    assert.match(e.stderr, re);
    assert.doesNotMatch(e.stderr, /\n\s+at |Segmentation|core dumped|terminate called/);
    return true;
  });
  fail(['predict', '--checkpoint', join(BAD, 'bert-checkpoint'), '--image', join(BAD, 'ok.jpg'), '--text', 'x'], /bert-checkpoint/);
  fail(['eval', '--checkpoint', join(BAD, 'bert-checkpoint'), '--data', join(BAD, 'malformed.jsonl')], /bert-checkpoint/);
  fail(['train', '--config', join(BAD, 'wrong-types.yaml')], /train\.lr: expected a number, received "fast"/);
});
