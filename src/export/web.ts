// `mmtrain export --format web`: a static folder that runs the classifier in the browser. The ONNX export
// (model.onnx, mmtrain.json, tokenizer.json, config.json), the page (index.html from assets/web, page.js and
// preprocess.js compiled from web/src), and vendor/: ONNX Runtime Web's WebAssembly build and
// @huggingface/tokenizers, copied from this package's dependencies. The page fetches nothing outside the folder.
import { copyFileSync, existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MmtrainError } from '../errors.js';
import { writeFolderAtomic } from '../files.js';
import { type OnnxExportOptions, writeOnnx } from './onnx.js';

/** The package root: dist/src/export/web.js or src/export/web.ts, up to the folder with package.json. */
function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5 && !existsSync(join(dir, 'package.json')); i++) dir = dirname(dir);
  return dir;
}

/** What the page needs besides the ONNX folder: [source, name in the export]. */
function pageFiles(): [string, string][] {
  const root = packageRoot();
  const require = createRequire(import.meta.url);
  const ortDist = dirname(require.resolve('onnxruntime-web')); // its "require" entry lives in dist/
  const tokDist = dirname(require.resolve('@huggingface/tokenizers'));
  const files: [string, string][] = [
    [join(root, 'assets', 'web', 'index.html'), 'index.html'],
    [join(root, 'dist', 'web', 'page.js'), 'page.js'],
    [join(root, 'dist', 'web', 'preprocess.js'), 'preprocess.js'],
    [join(ortDist, 'ort.wasm.bundle.min.mjs'), 'vendor/ort.wasm.bundle.min.mjs'],
    [join(ortDist, 'ort-wasm-simd-threaded.wasm'), 'vendor/ort-wasm-simd-threaded.wasm'],
    [join(tokDist, 'tokenizers.min.mjs'), 'vendor/tokenizers.min.mjs'],
  ];
  const missing = files.filter(([f]) => !existsSync(f)).map(([f]) => f);
  if (missing.length) throw new MmtrainError(`export --format web: missing ${missing.join(', ')} (the page is built by \`npm run build:web\`; the vendor files come with npm install)`);
  return files;
}

export interface WebExport {
  dir: string;
  /** the folder's files and their sizes in bytes */
  files: Record<string, number>;
}

/** Writes the browser folder for a checkpoint into `out` (new or empty). */
export function exportWeb(checkpoint: string, out: string, opts: Pick<OnnxExportOptions, 'fp16' | 'int8'> = {}): WebExport {
  if (opts.fp16 && opts.int8) throw new MmtrainError('export --format web: choose --fp16 or --int8, not both');
  const files = pageFiles();
  writeFolderAtomic(out, (tmp) => {
    writeOnnx(checkpoint, tmp, { ...opts, tokenTypeIds: false, externalData: 'auto' });
    mkdirSync(join(tmp, 'vendor'));
    for (const [src, name] of files) copyFileSync(src, join(tmp, name));
  });
  const sizes: Record<string, number> = {};
  const walk = (d: string, prefix: string) => {
    for (const f of readdirSync(d)) {
      const p = join(d, f);
      if (statSync(p).isDirectory()) walk(p, `${prefix}${f}/`);
      else sizes[`${prefix}${f}`] = statSync(p).size;
    }
  };
  walk(out, '');
  return { dir: out, files: sizes };
}
