// Durable file writes: a file a reader may take as complete (result.json, a study's summary, checkpoint and
// safetensors files, the data cache's index) is never seen half-written, and once written it survives a crash.
// The data goes to a temporary file beside the target, is fsynced, renamed over the target (atomic within a
// folder), and the folder is fsynced so the rename itself is on disk. On failure the temporary file is removed and
// the previous file is left as it was. Every such writer in mmtrain goes through writeFileAtomic.
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, readdirSync, renameSync, rmSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { MmtrainError } from './errors.js';
import { basename, dirname, join } from 'node:path';
import { threadId } from 'node:worker_threads';

let temporaryFiles = 0;

/**
 * Makes a folder and the folders above it that are missing (as mkdirSync with recursive: true), one level at a time:
 * Node's own never returns for a folder under /proc, where mkdir answers ENOENT for a parent that exists, and Node
 * retries it forever. Throws what mkdir throws for the level that cannot be made (EEXIST for a file in the way,
 * ENOTDIR under a file, ENOENT, EACCES).
 */
export function makeFolder(path: string): void {
  try {
    mkdirSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EEXIST' && isFolder(path)) return;
    const parent = dirname(path);
    if (code !== 'ENOENT' || parent === path) throw e;
    makeFolder(parent);
    try {
      mkdirSync(path);
    } catch (again) {
      if ((again as NodeJS.ErrnoException).code !== 'EEXIST' || !isFolder(path)) throw again;
    }
  }
}

function isFolder(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

/** A name no other writer uses: worker threads share the pid, and one thread may write the same target twice. */
function temporaryPathFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.${process.pid}-${threadId}-${++temporaryFiles}.tmp`);
}

/**
 * Writes `data` to `path` durably and atomically (see above). `data` may be chunks made one at a time (an
 * iterable, e.g. a generator), so that a large file never sits in memory whole; an error thrown while making them
 * fails the write like any other. Errors are the file system's own, for the caller to put in context.
 */
export function writeFileAtomic(path: string, data: string | Uint8Array | Iterable<Uint8Array>): void {
  const chunks: Iterable<Uint8Array> = typeof data === 'string' ? [Buffer.from(data)] : data instanceof Uint8Array ? [data] : data;
  const tmp = temporaryPathFor(path);
  // 'wx': never write into something already at the temporary path, and never remove what this call did not create
  const fd = openSync(tmp, 'wx');
  let open = true;
  try {
    for (const c of chunks) {
      let off = 0;
      while (off < c.length) off += writeSync(fd, c, off, c.length - off);
    }
    fsyncSync(fd);
    open = false;
    closeSync(fd);
    renameSync(tmp, path);
  } catch (e) {
    if (open) closeSync(fd);
    try {
      unlinkSync(tmp);
    } catch {
      // already renamed away or removed: nothing to tidy
    }
    throw e;
  }
  fsyncDirectory(dirname(path));
}

/** JSON text and a final newline, written with writeFileAtomic; `indent` null writes one line. */
export function writeJsonAtomic(path: string, value: unknown, indent: number | null = 2): void {
  writeFileAtomic(path, `${JSON.stringify(value, null, indent ?? undefined)}\n`);
}

/**
 * Makes the entries of a folder (files renamed or created in it) durable. Best effort: some file systems refuse to
 * fsync a folder, and there the rename is as durable as they make it.
 */
export function fsyncDirectory(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, 'r');
    fsyncSync(fd);
  } catch {
    // not supported here
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/**
 * A new folder written whole or not at all: `fill` writes into a temporary folder beside `out`, which is then
 * renamed to `out`. `out` must not exist or be empty (an export never overwrites anything); on failure the
 * temporary folder is removed and `out` left as it was.
 */
export function writeFolderAtomic<T>(out: string, fill: (dir: string) => T): T {
  if (existsSync(out) && readdirSync(out).length > 0) throw new MmtrainError(`${out}: the export folder exists and is not empty; choose a new folder or empty it`);
  const tmp = join(dirname(out), `.tmp-${basename(out)}-${process.pid}-${threadId}`);
  rmSync(tmp, { recursive: true, force: true });
  try {
    makeFolder(tmp);
    const r = fill(tmp);
    if (existsSync(out)) rmSync(out, { recursive: true });
    renameSync(tmp, out);
    fsyncDirectory(dirname(out));
    return r;
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
}

/** Reads a JSON file; an unreadable or invalid one is an error naming the file (and the line). */
export function readJsonFile<T = unknown>(path: string): T {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new MmtrainError(`${path}: cannot read (${(e as Error).message})`);
  }
  try {
    return JSON.parse(text) as T;
  } catch (e) {
    const m = /position (\d+)/.exec((e as Error).message);
    const line = m ? text.slice(0, Number(m[1])).split('\n').length : undefined;
    throw new MmtrainError(`${path}${line ? `:${line}` : ''}: invalid JSON (${(e as Error).message})`);
  }
}
