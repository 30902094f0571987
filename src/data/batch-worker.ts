// The batch thread's entry (see batch-thread.ts): reads and decodes the files (shard members, in-memory images) of each request (sharp runs them in
// libuv's pool) and sends the 8-bit pixels back, transferring their buffers.
//
// Images are started oldest request first. Those of a batch the training loop is not waiting for yet start
// `background` at a time, so that decoding ahead takes as little CPU as it can from a step that already uses every
// core; those of a batch the loop waits for (hurried) start up to the request's `concurrency` at once.
import { type MessagePort, parentPort, workerData } from 'node:worker_threads';
import { BufferPool } from './buffer-pool.js';
import { readImageFile, readImageRange } from './file-reads.js';
import { decodeImage, imageReadError, mulberry32 } from './image.js';
import type { BatchItem, BatchReply, BatchRequest, HurryMessage, ItemResult, ReturnsMessage } from './batch-thread.js';

interface Job {
  request: BatchRequest;
  item: BatchItem;
  done: (r: ItemResult) => void;
}

// answers go back on their own port (see batch-thread.ts)
const replies = (workerData as { replies: MessagePort }).replies;
const queue: Job[] = [];
/** open requests: whether the loop waits for it, and the most images decoding at once while it was open */
const open = new Map<number, { hurried: boolean; peak: number; reused: number }>();
let active = 0;
let background = 1;

// Buffers that image files and shard members were read into, reused once their image is decoded (buffer-pool.ts: a
// fresh one per image was memory for this thread's collector to count and free), up to 64 MB in
// all (a batch being decoded, with prefetch, of 640x480 photos: ~12 MB).
const spare = new BufferPool<Buffer>(64 << 20);
const readBuffer = (n: number) => spare.take(n) ?? Buffer.allocUnsafeSlow(Math.max(n, 64 << 10));
// Buffers that decoded images were sent back to the main thread in, given back once their pixels are in a batch
// (givePixelsBack): decoded into again, so that the main thread's collector does not count fresh memory per image.
const pixelBuffers = new BufferPool<ArrayBuffer>(64 << 20);

async function decode(item: BatchItem, r: BatchRequest): Promise<ItemResult> {
  let reused: Buffer | null = null;
  const n = r.cfg.size * r.cfg.size * 3;
  const pixels = pixelBuffers.take(n);
  let into: Uint8Array | undefined = pixels && new Uint8Array(pixels, 0, n);
  try {
    // A synchronous read blocks only this thread, and saves the four event-loop turns of an async one.
    let buf: Buffer;
    if (item.bytes) buf = Buffer.from(item.bytes.buffer, item.bytes.byteOffset, item.bytes.byteLength);
    else {
      try {
        if (item.range) buf = readImageRange(item.range, (reused = readBuffer(item.range.length)));
        else buf = readImageFile(item.file, (n) => (reused = readBuffer(n)));
      } catch (e) {
        throw imageReadError(item.file, e);
      }
    }
    const img = await decodeImage(buf, item.file, r.cfg, item.seed === null ? undefined : mulberry32(item.seed), into);
    if (img.data === into) {
      into = undefined; // sent with the result
      open.get(r.id)!.reused++;
    }
    return { data: img.data, width: img.width, height: img.height };
  } catch (e) {
    return { error: (e as Error).message };
  } finally {
    // decoded (or failed): nothing holds the bytes any more
    if (reused) spare.give(reused);
    if (into) pixelBuffers.give(into.buffer as ArrayBuffer);
  }
}

function pump(): void {
  for (let i = 0; i < queue.length; ) {
    const job = queue[i]!;
    const limit = open.get(job.request.id)!.hurried ? job.request.concurrency : background;
    if (active >= limit) {
      i++;
      continue;
    }
    queue.splice(i, 1);
    active++;
    for (const r of open.values()) r.peak = Math.max(r.peak, active);
    void decode(job.item, job.request).then((r) => {
      active--;
      job.done(r);
      pump();
    });
  }
}

// Ports to send in-memory images' buffers back on, once decoded, by BatchItem.returnTo (see returnImagesTo).
const returnPorts = new Map<number, MessagePort>();

/** Sends the buffers of `items`' in-memory images (each holds one image alone) back to be filled again. */
function sendBack(items: BatchItem[]): void {
  const byPort = new Map<number, Set<ArrayBuffer>>();
  for (const it of items) {
    if (!it.bytes || it.returnTo === undefined || !returnPorts.has(it.returnTo)) continue;
    let set = byPort.get(it.returnTo);
    if (!set) byPort.set(it.returnTo, (set = new Set()));
    set.add(it.bytes.buffer as ArrayBuffer);
  }
  for (const [id, set] of byPort) {
    const buffers = [...set];
    returnPorts.get(id)!.postMessage({ buffers }, buffers);
  }
}

parentPort!.on('message', async (m: BatchRequest | HurryMessage | ReturnsMessage) => {
  if (m.kind === 'returns') {
    returnPorts.set(m.id, m.port);
    m.port.once('close', () => returnPorts.delete(m.id)); // its stream thread has ended
    return;
  }
  background = m.background;
  if (m.kind === 'hurry') {
    const r = open.get(m.id); // one already answered has nothing left to hurry
    if (r) r.hurried = true;
    pump();
    return;
  }
  for (const b of m.pixels) pixelBuffers.give(b);
  open.set(m.id, { hurried: false, peak: 0, reused: 0 });
  const pending = m.items.map((item) => new Promise<ItemResult>((done) => queue.push({ request: m, item, done })));
  pump();
  const results = await Promise.all(pending);
  const { peak, reused } = open.get(m.id)!;
  open.delete(m.id);
  const transfer = results.flatMap((x) => ('data' in x ? [x.data.buffer as ArrayBuffer] : []));
  replies.postMessage({ id: m.id, results, peak, reused } satisfies BatchReply, transfer);
  sendBack(m.items);
});
