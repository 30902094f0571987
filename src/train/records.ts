// metrics.jsonl: one JSON record per line, appended as training goes.
import { existsSync, readFileSync } from 'node:fs';
import { writeFileAtomic } from '../files.js';

/** The records of a metrics.jsonl file (a torn last line, from a crash mid-write, is ignored). */
export function readRecords(file: string): Record<string, any>[] {
  if (!existsSync(file)) return [];
  const out: Record<string, unknown>[] = [];
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    try {
      out.push(JSON.parse(line));
    } catch {
      // only the last line can be torn; anything else is skipped the same way rather than failing a report
    }
  }
  return out;
}

/**
 * On resume from the checkpoint of `step`: drops the records logged after it (they will be logged again as the
 * steps are redone) and any torn last line, by an atomic rewrite. Returns how many records were dropped.
 */
export function truncateRecordsAfter(file: string, step: number): number {
  if (!existsSync(file)) return 0;
  const lines = readFileSync(file, 'utf8').split('\n').filter((l) => l.trim());
  const keep: string[] = [];
  for (const line of lines) {
    try {
      const r = JSON.parse(line) as { step?: unknown };
      if (typeof r.step === 'number' && r.step > step) continue;
      keep.push(line);
    } catch {
      // a torn line from a killed process
    }
  }
  const dropped = lines.length - keep.length;
  if (dropped) {
    writeFileAtomic(file, keep.length ? `${keep.join('\n')}\n` : '');
  }
  return dropped;
}
