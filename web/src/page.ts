// The page of `mmtrain export --format web`: the classifier run entirely in the browser. mmtrain.json gives the
// labels and the preprocessing, tokenizer.json the tokenizer (@huggingface/tokenizers, the library mmtrain uses in
// Node), model.onnx the graph (ONNX Runtime Web, WebAssembly). Nothing is fetched from outside this folder.
// window.mmtrain = { ready, predict(image, text), encode(text), pixels(image) } for scripts and tests.
import * as ort from 'onnxruntime-web';
import { Tokenizer } from '@huggingface/tokenizers';
import { type ImagePreprocessing, decodeRgb, normalize, resizeForModel, truncate } from './preprocess.js';

interface ExportInfo {
  labels: string[];
  maxLength: number;
  image: ImagePreprocessing;
  tokenizer: string;
  onnx: { model: string; externalData: string | null; inputs: string[]; precision: string };
}

export interface Prediction {
  label: string;
  index: number;
  probabilities: Record<string, number>;
}

async function fetchOk(path: string): Promise<Response> {
  const res = await fetch(path);
  if (!res.ok) throw new Error(`${path}: ${res.status} ${res.statusText} (is the page served from its export folder?)`);
  return res;
}

async function load() {
  const info = (await (await fetchOk('./mmtrain.json')).json()) as ExportInfo;
  const tokenizer = new Tokenizer(await (await fetchOk(`./${info.tokenizer}`)).json(), {});
  // the WebAssembly binary beside the bundle (whose JavaScript glue is built in)
  ort.env.wasm.wasmPaths = { wasm: new URL('./vendor/ort-wasm-simd-threaded.wasm', location.href).href };
  ort.env.wasm.numThreads = 1; // a static host is not cross-origin isolated: no SharedArrayBuffer threads
  const model = new Uint8Array(await (await fetchOk(`./${info.onnx.model}`)).arrayBuffer());
  const externalData = info.onnx.externalData ? [{ path: info.onnx.externalData, data: `./${info.onnx.externalData}` }] : undefined;
  const session = await ort.InferenceSession.create(model, { executionProviders: ['wasm'], externalData });
  return { info, tokenizer, session };
}

const loaded = load();

/** Token ids of a text as mmtrain's TextTokenizer.encode gives them: [CLS] ... [SEP], at most maxLength. */
async function encode(text: string): Promise<number[]> {
  const { info, tokenizer } = await loaded;
  return truncate(tokenizer.encode(text, { return_token_type_ids: true }).ids, info.maxLength);
}

/** The size x size RGB pixels the model sees. */
async function pixels(image: Blob | Uint8Array): Promise<Uint8Array> {
  const { info } = await loaded;
  return resizeForModel(await decodeRgb(image instanceof Blob ? image : new Blob([image as BlobPart])), info.image);
}

async function predict(image: Blob | Uint8Array, text: string): Promise<Prediction> {
  const { info, session } = await loaded;
  const S = info.image.size;
  const px = normalize(await pixels(image), info.image);
  const ids = await encode(text);
  const T = ids.length;
  const feeds: Record<string, ort.Tensor> = {
    input_ids: new ort.Tensor('int64', BigInt64Array.from(ids, BigInt), [1, T]),
    attention_mask: new ort.Tensor('int64', new BigInt64Array(T).fill(1n), [1, T]),
    pixel_values: new ort.Tensor('float32', px, [1, 3, S, S]),
  };
  if (info.onnx.inputs.includes('token_type_ids')) feeds.token_type_ids = new ort.Tensor('int64', new BigInt64Array(T), [1, T]);
  const logits = (await session.run(feeds)).logits!.data as Float32Array;
  const m = Math.max(...logits);
  const e = Array.from(logits, (v) => Math.exp(v - m));
  const sum = e.reduce((a, b) => a + b, 0);
  const probs = e.map((v) => v / sum);
  const index = probs.indexOf(Math.max(...probs));
  return { label: info.labels[index]!, index, probabilities: Object.fromEntries(info.labels.map((l, j) => [l, probs[j]!])) };
}

(window as unknown as { mmtrain: unknown }).mmtrain = { ready: loaded.then(() => true), predict, encode, pixels };

// ---- the form ----

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const status = $<HTMLParagraphElement>('status');
const file = $<HTMLInputElement>('image');
const text = $<HTMLTextAreaElement>('text');
const button = $<HTMLButtonElement>('predict');
const preview = $<HTMLImageElement>('preview');
const result = $<HTMLTableSectionElement>('result');

loaded.then(({ info }) => {
  status.textContent = `Ready: ${info.labels.length} labels, ${info.image.size} x ${info.image.size} images, texts up to ${info.maxLength} tokens (${info.onnx.precision} weights).`;
  button.disabled = false;
}, (e: unknown) => {
  status.textContent = `Could not load the model: ${(e as Error).message}`;
  status.className = 'error';
});

file.addEventListener('change', () => {
  const f = file.files?.[0];
  if (f) preview.src = URL.createObjectURL(f);
});

button.addEventListener('click', async () => {
  const f = file.files?.[0];
  if (!f) {
    status.textContent = 'Pick an image first.';
    return;
  }
  button.disabled = true;
  try {
    const t0 = performance.now();
    const p = await predict(f, text.value);
    status.textContent = `Predicted "${p.label}" in ${(performance.now() - t0).toFixed(0)} ms.`;
    status.className = '';
    result.replaceChildren(...Object.entries(p.probabilities).sort((a, b) => b[1] - a[1]).map(([label, prob]) => {
      const row = document.createElement('tr');
      const name = document.createElement('td');
      name.textContent = label;
      const bar = document.createElement('td');
      const fill = document.createElement('div');
      fill.className = 'bar';
      fill.style.width = `${(prob * 100).toFixed(1)}%`;
      bar.append(fill);
      const value = document.createElement('td');
      value.textContent = prob.toFixed(4);
      row.append(name, bar, value);
      if (label === p.label) row.className = 'top';
      return row;
    }));
  } catch (e) {
    status.textContent = `Could not predict: ${(e as Error).message}`;
    status.className = 'error';
  } finally {
    button.disabled = false;
  }
});
