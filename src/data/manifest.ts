// Dataset manifests: JSONL ({"image": ..., "text": ..., "label": 0 | "name"}) or CSV with a header (image, text,
// label). Image paths are relative to the manifest and may not leave the data root. The whole manifest is checked
// before training: every problem is collected with its file and line; training refuses a broken manifest unless
// onBadSample is "skip", in which case the bad lines are counted and reported.
import { readFileSync, statSync } from 'node:fs';
import { dirname, isAbsolute, relative, resolve, sep } from 'node:path';
import { parse as parseCsv } from 'csv-parse/sync';
import { MmtrainError } from '../errors.js';
import { discoverLabels, labelResolver, missingLabel, noLabel } from './labels.js';

export interface Sample {
  /** absolute image path; for an image held in memory (bytes), the name its messages use */
  image: string;
  /** the encoded image itself (Parquet), decoded from memory instead of read from `image` */
  bytes?: Uint8Array;
  /** where the encoded image is in a larger file (a WebDataset shard's member): read from there, not from `image` */
  range?: ImageRange;
  text: string;
  /** class index into the label list; -1 for an unlabelled sample (prediction, label: "optional") */
  label: number;
  /** where the sample came from, for messages: "file:line" */
  where: string;
}

/** Bytes [offset, offset + length) of a file: an image stored inside another file. */
export interface ImageRange {
  file: string;
  offset: number;
  length: number;
  /** the file's inode when the range was read from it: a file replaced since (a new inode) is opened again */
  ino?: number;
}

export interface Problem {
  where: string;
  message: string;
}

export interface ManifestOptions {
  /** class names in index order; when absent they are discovered (sorted names, or 0..max for integer labels) */
  labels?: string[];
  onBadSample?: 'error' | 'skip';
  /** folder that image paths must stay inside (default: the manifest's folder) */
  root?: string;
  /** check that every image exists and is not empty (default true) */
  checkFiles?: boolean;
  /** "optional" for prediction: a line without a label is a sample with label -1; a label given is still checked */
  label?: 'required' | 'optional';
}

export interface Manifest {
  file: string;
  samples: Sample[];
  labels: string[];
  /** lines that were skipped (onBadSample: "skip") */
  skipped: Problem[];
}

interface RawRow {
  where: string;
  image: unknown;
  text: unknown;
  label: unknown;
}

export function formatProblems(file: string, problems: Problem[], max = 20): string {
  const lines = problems.slice(0, max).map((p) => `  ${p.where}: ${p.message}`);
  if (problems.length > max) lines.push(`  ... and ${problems.length - max} more`);
  return `${file}: ${problems.length} problem${problems.length === 1 ? '' : 's'} in the manifest:\n${lines.join('\n')}`;
}

function readRows(file: string, problems: Problem[], labelOptional: boolean): RawRow[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new MmtrainError(`${file}: cannot read the manifest (${(e as Error).message})`);
  }
  if (text.includes('\uFFFD')) {
    // readFileSync decodes invalid UTF-8 to U+FFFD: report the lines that carry it
    text.split('\n').forEach((l, i) => {
      if (l.includes('\uFFFD')) problems.push({ where: `${file}:${i + 1}`, message: 'invalid UTF-8 in this line' });
    });
  }
  const rows: RawRow[] = [];
  if (/\.csv$/i.test(file)) {
    let records: { record: Record<string, string>; info: { lines: number; error?: Error } }[];
    try {
      records = parseCsv(text, { columns: true, info: true, relax_column_count: true, skip_empty_lines: true, bom: true }) as never;
    } catch (e) {
      const m = e as Error & { lines?: number };
      throw new MmtrainError(`${file}${m.lines ? `:${m.lines}` : ''}: malformed CSV (${m.message})`);
    }
    const header = text.replace(/^\uFEFF/, '').split(/\r?\n/, 1)[0]!.split(',').map((h) => h.trim());
    const required = labelOptional ? ['image', 'text'] : ['image', 'text', 'label'];
    const missing = required.filter((c) => !header.includes(c));
    if (missing.length) {
      throw new MmtrainError(`${file}:1: the CSV header lacks the column${missing.length > 1 ? 's' : ''} ${missing.join(', ')} (header: ${header.join(',')}; expected ${required.join(',')})`);
    }
    for (const { record, info } of records) {
      const where = `${file}:${info.lines}`;
      if (info.error) {
        problems.push({ where, message: `expected ${header.length} columns (${header.join(',')})` });
        continue;
      }
      rows.push({ where, image: record.image, text: record.text, label: record.label === undefined ? undefined : record.label.trim() });
    }
    return rows;
  }
  text.split('\n').forEach((line, i) => {
    const where = `${file}:${i + 1}`;
    if (!line.trim()) return;
    let obj: unknown;
    try {
      obj = JSON.parse(line);
    } catch (e) {
      problems.push({ where, message: `invalid JSON (${(e as Error).message})` });
      return;
    }
    if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) {
      problems.push({ where, message: 'expected a JSON object {"image": ..., "text": ..., "label": ...}' });
      return;
    }
    const o = obj as Record<string, unknown>;
    rows.push({ where, image: o.image, text: o.text, label: o.label });
  });
  return rows;
}

/** Reads and validates a JSONL or CSV manifest. */
export function readManifest(file: string, opts: ManifestOptions = {}): Manifest {
  const path = resolve(file);
  const base = dirname(path);
  const root = resolve(opts.root ?? base);
  const problems: Problem[] = [];
  const rows = readRows(path, problems, opts.label === 'optional');
  const badLines = new Set(problems.map((p) => p.where));

  // Labels: integers index directly; names go through the label list (given, or discovered and sorted).
  const labels = opts.labels ?? discoverLabels(rows.map((r) => r.label));
  const toIndex = labelResolver(labels, Boolean(opts.labels));

  const samples: Sample[] = [];
  const statCache = new Map<string, number>();
  for (const r of rows) {
    const before = problems.length;
    const report = (message: string) => problems.push({ where: r.where, message });
    if (typeof r.image !== 'string' || !r.image.trim()) report('"image" must be a non-empty path');
    if (typeof r.text !== 'string') report('"text" must be a string');
    else if (!r.text.trim()) report('"text" is empty');
    let label = -1;
    if (noLabel(r.label)) {
      if (opts.label !== 'optional') report(missingLabel(r.label));
    } else {
      const i = toIndex(r.label);
      if (typeof i === 'string') report(i);
      else label = i;
    }
    let image = '';
    if (typeof r.image === 'string' && r.image.trim()) {
      image = isAbsolute(r.image) ? r.image : resolve(base, r.image);
      const rel = relative(root, image);
      if (rel === '' || rel.startsWith(`..${sep}`) || rel === '..' || isAbsolute(rel)) {
        report(`image path "${r.image}" escapes the data root ${root}`);
      } else if (opts.checkFiles ?? true) {
        let size = statCache.get(image);
        if (size === undefined) {
          try {
            const st = statSync(image);
            size = st.isFile() ? st.size : -2;
          } catch {
            size = -1;
          }
          statCache.set(image, size);
        }
        if (size === -1) report(`image not found: ${r.image}`);
        else if (size === -2) report(`image is not a file: ${r.image}`);
        else if (size === 0) report(`image file is empty (0 bytes): ${r.image}`);
      }
    }
    if (problems.length === before && !badLines.has(r.where)) samples.push({ image, text: r.text as string, label, where: r.where });
  }
  if (problems.length && (opts.onBadSample ?? 'error') === 'error') {
    throw new MmtrainError(`${formatProblems(path, problems)}\nFix these lines, or set data.onBadSample: "skip" to train without them.`);
  }
  if (!samples.length) throw new MmtrainError(`${path}: the manifest has no usable samples`);
  return { file: path, samples, labels, skipped: problems };
}
