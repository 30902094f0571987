// The batch thread's entry (see batch-thread.ts): decodes every file of a request at once (sharp runs them in
// libuv's pool) and sends the 8-bit pixels back, transferring their buffers.
import { readFileSync } from 'node:fs';
import { parentPort } from 'node:worker_threads';
import { decodeImage, imageReadError, mulberry32 } from './image.js';
import type { BatchReply, BatchRequest, ItemResult } from './batch-thread.js';

parentPort!.on('message', async (r: BatchRequest) => {
  const results = await Promise.all(r.items.map(async (item): Promise<ItemResult> => {
    try {
      // A synchronous read blocks only this thread, and saves the four event-loop turns of an async one.
      let buf: Buffer;
      try {
        buf = readFileSync(item.file);
      } catch (e) {
        throw imageReadError(item.file, e);
      }
      const img = await decodeImage(buf, item.file, r.cfg, item.seed === null ? undefined : mulberry32(item.seed));
      return { data: img.data, width: img.width, height: img.height };
    } catch (e) {
      return { error: (e as Error).message };
    }
  }));
  const transfer = results.flatMap((x) => ('data' in x ? [x.data.buffer as ArrayBuffer] : []));
  parentPort!.postMessage({ id: r.id, results } satisfies BatchReply, transfer);
});
