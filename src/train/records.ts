// metrics.jsonl: one JSON record per line, appended as training goes.
import { existsSync, readFileSync } from 'node:fs';

/** The records of a metrics.jsonl file (a torn last line, from a crash mid-write, is ignored). */
export function readRecords(file: string): Record<string, any>[] { // eslint-disable-line @typescript-eslint/no-explicit-any
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
