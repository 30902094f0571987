// Plain text files for text pretraining (masked language modelling), as Hugging Face's run_mlm.py reads them: one
// text per line, blank lines left out. A corpus is a data set of samples with no image and no label.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { MmtrainError } from '../errors.js';
import type { Manifest, Sample } from './manifest.js';

/** Whether every file of a data set is a .txt corpus. */
export function isTextCorpus(files: string[]): boolean {
  return files.length > 0 && files.every((f) => /\.txt$/i.test(f));
}

/** Reads .txt files, one sample per non-blank line (its place "file:line" for messages). */
export function readTextCorpus(field: string, files: string[]): Manifest {
  const samples: Sample[] = [];
  for (const f of files) {
    const path = resolve(f);
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (e) {
      throw new MmtrainError(`${field}: cannot read ${path} (${(e as Error).message})`);
    }
    text.split('\n').forEach((line, i) => {
      const t = line.replace(/\r$/, '').trim();
      if (t) samples.push({ image: '', text: t, label: -1, where: `${path}:${i + 1}` });
    });
  }
  if (!samples.length) throw new MmtrainError(`${field}: ${files.join(', ')} hold${files.length === 1 ? 's' : ''} no text (expected one text per line)`);
  return { file: files.length === 1 ? resolve(files[0]!) : `${resolve(files[0]!)} (+${files.length - 1})`, samples, labels: [], skipped: [] };
}
