// Data paths as users write them: one file, a glob ("data/train-*.parquet"), or WebDataset's brace ranges
// ("shards/train-{000000..000127}.tar", zero padding kept). Braces expand with `braces`, globs with `tinyglobby`;
// each pattern's matches are sorted, the patterns keep their order, and a pattern matching nothing is an error.
import { existsSync, statSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import braces from 'braces';
import { globSync } from 'tinyglobby';
import { MmtrainError } from '../errors.js';

const GLOB = /[*?[\]]/;

/** The files a data path names (absolute, in order, without repeats). `field` names the setting in messages. */
export function expandDataPaths(field: string, pattern: string, base = process.cwd()): string[] {
  if (!pattern.trim()) throw new MmtrainError(`${field}: expected a file, a glob or a brace range, received an empty string`);
  let parts: string[];
  try {
    parts = braces(pattern, { expand: true, rangeLimit: 1_000_000 });
  } catch (e) {
    throw new MmtrainError(`${field}: cannot expand "${pattern}" (${(e as Error).message})`);
  }
  if (!parts.length) parts = [pattern];
  const out: string[] = [];
  const seen = new Set<string>();
  const missing: string[] = [];
  for (const p of parts) {
    const abs = isAbsolute(p) ? p : resolve(base, p);
    let files: string[];
    if (GLOB.test(p)) {
      files = globSync(abs.replaceAll('\\', '/'), { absolute: true, onlyFiles: true, expandDirectories: false }).sort();
      if (!files.length) missing.push(p);
    } else if (!existsSync(abs)) {
      missing.push(p);
      files = [];
    } else if (!statSync(abs).isFile()) {
      throw new MmtrainError(`${field}: ${p} is a folder; name its files (for example ${p.replace(/\/$/, '')}/*.parquet)`);
    } else {
      files = [abs];
    }
    for (const f of files) if (!seen.has(f)) { seen.add(f); out.push(f); }
  }
  if (missing.length) {
    const shown = missing.slice(0, 5).join(', ') + (missing.length > 5 ? `, ... (${missing.length} in all)` : '');
    throw new MmtrainError(`${field}: no file matches ${shown}${parts.length > 1 ? ` (of the ${parts.length} paths "${pattern}" expands to)` : ''}`);
  }
  return out;
}

export type DataFormat = 'manifest' | 'parquet' | 'webdataset';

/** The format of a set of data files, from their extensions; a mix is an error naming both kinds. */
export function dataFormat(field: string, files: string[]): DataFormat {
  const kind = (f: string): DataFormat | null => (/\.parquet$/i.test(f) ? 'parquet' : /\.tar$/i.test(f) ? 'webdataset' : /\.(jsonl|json|ndjson|csv)$/i.test(f) ? 'manifest' : null);
  const kinds = new Set<DataFormat>();
  for (const f of files) {
    const k = kind(f);
    if (!k) throw new MmtrainError(`${field}: ${f} is not a data file mmtrain reads (expected .jsonl or .csv manifests, .parquet files or .tar WebDataset shards)`);
    kinds.add(k);
  }
  if (kinds.size > 1) throw new MmtrainError(`${field}: mixes ${[...kinds].join(' and ')} files; one data set is one format (mmtrain convert turns one into another)`);
  const k = [...kinds][0]!;
  if (k === 'manifest' && files.length > 1) throw new MmtrainError(`${field}: matches ${files.length} manifests (${files.slice(0, 3).join(', ')}...); expected one manifest file`);
  return k;
}
