// What counting a WebDataset shard found, kept between runs. Opening a set of shards counts every shard's samples
// (one pass over its headers and small members: 15-50 us a sample, up to a minute a million samples, every start).
// A shard counted without a problem is counted once: its sample count, its parts (webdataset.ts ShardCuts) and the
// distinct labels it holds go into a small file of the user's cache folder (MMTRAIN_CACHE_DIR, else
// $XDG_CACHE_HOME/mmtrain, else ~/.cache/mmtrain; under shard-counts/), named by a hash of everything the count
// depends on: the shard's real path, size, modification and change times, inode and device, the fields read
// (data.columns), the part limits and this file's format. A shard changed since has another name, and is counted
// again; one that changes while it is counted is not kept. The folder is only ever an aid: one that cannot be made,
// read or written is passed over (the shard is counted), and so is a file that does not parse. Shards with a problem
// (a corrupt member, a sample missing its image) are counted every time, so that their problems are reported every
// time.
import { createHash } from 'node:crypto';
import { readFileSync, realpathSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { makeFolder } from '../files.js';
import type { ColumnNames } from './stream-types.js';
import type { ShardLimits, ShardPart } from './webdataset.js';

/** A label as a shard's members give it: text (a .cls member) or a JSON value. */
export type ShardLabel = string | number | boolean;

/** What counting a shard found. */
export interface ShardCount {
  count: number;
  parts: ShardPart[];
  /** its distinct labels (absent ones left out), in the order first met */
  labels: ShardLabel[];
}

// the format of the kept files and the rules of counting (webdataset.ts: members, keys, fields; tar.ts): a change to
// either must change this, so that counts made under the old rules are not used
const VERSION = 1;

/** The folder kept counts go in. */
export function shardCountsDir(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.MMTRAIN_CACHE_DIR || (env.XDG_CACHE_HOME ? join(env.XDG_CACHE_HOME, 'mmtrain') : join(homedir(), '.cache', 'mmtrain'));
  return join(base, 'shard-counts');
}

/**
 * Where a shard's count is kept, named by the shard as it is now (null when it cannot be looked at: counting it will
 * say why). Taken before the shard is counted, so that what is kept is named by the file that was counted.
 */
export function countFile(file: string, cols: ColumnNames, limits: ShardLimits): string | null {
  try {
    const st = statSync(file, { bigint: true });
    // ctime too: a copy can be given the original's mtime (cp -p, touch -r), not its ctime; dev: the same path on
    // another disk (a cache folder shared between machines)
    const stamp = [st.size, st.mtimeNs, st.ctimeNs, st.ino, st.dev].map(String);
    const what = JSON.stringify([VERSION, realpathSync(file), ...stamp, cols.image ?? null, cols.text ?? null, cols.label ?? null, limits.splitBytes, limits.partBytes]);
    return join(shardCountsDir(), `${createHash('sha256').update(what).digest('hex').slice(0, 40)}.json`);
  } catch {
    return null;
  }
}

const isPart = (p: unknown): p is ShardPart => typeof p === 'object' && p !== null && [(p as ShardPart).at, (p as ShardPart).first, (p as ShardPart).count].every((v) => Number.isSafeInteger(v) && v >= 0);

/** The count kept in `at` (countFile), or null (none kept, or one that does not parse: counted again). */
export function keptCount(at: string | null): ShardCount | null {
  if (!at) return null;
  try {
    const c = JSON.parse(readFileSync(at, 'utf8')) as ShardCount;
    const parts = Array.isArray(c.parts) ? c.parts : [];
    const sum = parts.every(isPart) ? parts.reduce((a, p) => a + p.count, 0) : -1;
    const labels = Array.isArray(c.labels) && c.labels.every((l) => ['string', 'number', 'boolean'].includes(typeof l));
    if (!Number.isSafeInteger(c.count) || c.count < 1 || sum !== c.count || !labels) return null;
    return { count: c.count, parts, labels: c.labels };
  } catch {
    return null;
  }
}

/**
 * Keeps what counting a shard (read without a problem) found, in `at` (countFile before it was counted), unless the
 * shard has changed while it was counted (replaced, rewritten: it would name the new file); nothing when the cache
 * folder cannot be written.
 */
export function keepCount(at: string | null, file: string, cols: ColumnNames, limits: ShardLimits, c: ShardCount): void {
  if (!at || countFile(file, cols, limits) !== at) return;
  // written under a name of its own, then renamed: another process opening the same shards reads a whole file or
  // none (not synced: a file cut short by a crash does not parse, and is counted again)
  const tmp = `${at}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
  try {
    makeFolder(shardCountsDir());
    writeFileSync(tmp, JSON.stringify(c), { flag: 'wx' });
    renameSync(tmp, at);
  } catch {
    // a read-only home, a full disk: the shard is counted again next time
    try {
      rmSync(tmp, { force: true });
    } catch {
      // (no folder to have written it in)
    }
  }
}

/** Distinct labels, in the order first met: what label discovery needs of a shard (labels.ts discoverLabels). */
export class DistinctLabels {
  readonly #seen = new Set<string>();
  /** the distinct labels, and the first label that is none of text, number or boolean (a JSON object), if any */
  readonly values: unknown[] = [];
  /** such a label was met: discovery sees it (it is no class index), but the shard's count is not kept */
  odd = false;

  add(v: unknown): void {
    if (typeof v !== 'string' && typeof v !== 'number' && typeof v !== 'boolean') {
      if (!this.odd) this.values.push(v);
      this.odd = true;
      return;
    }
    const k = `${typeof v}:${String(v)}`;
    if (this.#seen.has(k)) return;
    this.#seen.add(k);
    this.values.push(v);
  }
}
