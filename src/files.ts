// Files that are never seen half-written: a temporary file beside the target, written in full, fsynced, then
// renamed over it. On failure the temporary file is removed and the previous file is left as it was.
import { closeSync, fsyncSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

/** `data` may be chunks made one at a time (an iterable), so that a large file never sits in memory whole. */
export function writeFileAtomic(path: string, data: string | Uint8Array | Iterable<Uint8Array>): void {
  const chunks: Iterable<Uint8Array> = typeof data === 'string' ? [Buffer.from(data)] : data instanceof Uint8Array ? [data] : data;
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  let fd: number | undefined;
  try {
    fd = openSync(tmp, 'w');
    for (const c of chunks) {
      let off = 0;
      while (off < c.length) off += writeSync(fd, c, off, c.length - off);
    }
    fsyncSync(fd);
    closeSync(fd);
    fd = undefined;
    renameSync(tmp, path);
  } catch (e) {
    if (fd !== undefined) closeSync(fd);
    try {
      unlinkSync(tmp);
    } catch {
      // nothing to remove
    }
    throw e;
  }
}
