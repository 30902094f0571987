// The batch thread's entry (see batch-thread.ts): decodes every file of a request at once (sharp runs them in
// libuv's pool), normalises the batch with the given pixels, and sends it back, transferring the buffers.
import { readFileSync } from 'node:fs';
import { parentPort } from 'node:worker_threads';
import { type DecodedImage, decodeImage, imageReadError, mulberry32, normalizeToCHW } from './image.js';
import type { BatchReply, BatchRequest, ItemResult } from './batch-thread.js';

parentPort!.on('message', async (r: BatchRequest) => {
  const S = r.cfg.size;
  const images: (DecodedImage | null)[] = [];
  const results = await Promise.all(r.items.map(async (item, k): Promise<ItemResult> => {
    if ('data' in item) {
      images[k] = { data: item.data, width: S, height: S };
      return null;
    }
    try {
      // A synchronous read blocks only this thread, and saves the four event-loop turns of an async one.
      let buf: Buffer;
      try {
        buf = readFileSync(item.file);
      } catch (e) {
        throw imageReadError(item.file, e);
      }
      const img = await decodeImage(buf, item.file, r.cfg, item.seed === null ? undefined : mulberry32(item.seed));
      images[k] = img;
      return r.wantPixels ? { data: img.data, width: img.width, height: img.height } : null;
    } catch (e) {
      images[k] = null;
      return { error: (e as Error).message };
    }
  }));
  const pixels = normalizeToCHW(images.filter((im): im is DecodedImage => im !== null), r.cfg);
  const transfer = [pixels.buffer as ArrayBuffer, ...results.flatMap((x) => (x && 'data' in x ? [x.data.buffer as ArrayBuffer] : []))];
  parentPort!.postMessage({ id: r.id, results, pixels } satisfies BatchReply, transfer);
});
