// The HTTP JSON API over a checkpoint (`mmtrain serve`): POST /v1/predict, GET /v1/metadata, GET /healthz.
// Requests are decoded and tokenized as they arrive, then batched dynamically (batcher.ts) and run through the same
// collation and forward pass as `mmtrain predict`. Every limit is checked before the work it bounds; bad input gets
// a 4xx whose message names the field and the limit; no request can stop the process.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import sharp, { type Metadata } from 'sharp';
import { MmtrainError, checkInt, checkNumber } from '../errors.js';
import { collate, disposeBatch, type CollateItem } from '../data/collate.js';
import { decodeImage } from '../data/image.js';
import { tidy } from '../tensor/scope.js';
import { deviceOf } from '../train/precision.js';
import { type InferenceOptions, type Prediction, type Predictor, predictBatch } from '../train/inference.js';
import { DynamicBatcher } from './batcher.js';

export interface ServeOptions {
  /** items per forward pass at most (default 32) */
  maxBatch?: number;
  /** how long a batch's first item waits for more, in ms (default 5) */
  maxWaitMs?: number;
  /** request body size limit in bytes (default 20 MiB) */
  maxBodyBytes?: number;
  /** an image's width x height limit, checked from its header before decoding (default 40 million) */
  maxPixels?: number;
  /** a text's length limit in characters (default 10,000; tokens past the checkpoint's maxLength are cut anyway) */
  maxTextChars?: number;
  /** pairs per request at most (default 64) */
  maxItems?: number;
  /** pairs waiting for a batch before new requests get 503 (default 1024) */
  maxQueue?: number;
  precision?: InferenceOptions['precision'];
}

const DEFAULTS: Required<Omit<ServeOptions, 'precision'>> = {
  maxBatch: 32, maxWaitMs: 5, maxBodyBytes: 20 * 2 ** 20, maxPixels: 40e6, maxTextChars: 10000, maxItems: 64, maxQueue: 1024,
};

/** A request error: its HTTP status and a message naming what was wrong. */
class HttpError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

export interface PredictionServer {
  server: Server;
  /** forward passes and pairs so far */
  stats: DynamicBatcher<CollateItem, Prediction>['stats'];
  /** listens on host:port (port 0: any free port); resolves to the address */
  listen(port: number, host: string): Promise<AddressInfo>;
  /** stops accepting, answers what is queued, closes the connections */
  close(): Promise<void>;
}

export function predictionServer(p: Predictor, options: ServeOptions = {}): PredictionServer {
  const o = { ...DEFAULTS, ...options };
  checkInt('maxBatch', o.maxBatch, 1, 4096);
  checkNumber('maxWaitMs', o.maxWaitMs, 0, 10000);
  checkInt('maxBodyBytes', o.maxBodyBytes, 1);
  checkInt('maxPixels', o.maxPixels, 1);
  checkInt('maxTextChars', o.maxTextChars, 1);
  checkInt('maxItems', o.maxItems, 1);
  checkInt('maxQueue', o.maxQueue, 1);
  const device = deviceOf(p.model);
  const image = { ...p.image, maxPixels: o.maxPixels };
  const batcher = new DynamicBatcher<CollateItem, Prediction>((items) => {
    const b = tidy(() => collate(items, { padId: p.tokenizer.padId, padding: p.info.padding ?? 'longest', maxLength: p.info.maxLength, image, device }));
    try {
      return predictBatch(p, b, { precision: o.precision });
    } finally {
      disposeBatch(b);
    }
  }, { maxBatch: o.maxBatch, maxWaitMs: o.maxWaitMs, more: () => preparing > 0 });
  /** predict requests being read, decoded and tokenized: the batcher waits for them, and only for them */
  let preparing = 0;

  const metadata = {
    labels: p.info.labels,
    model: {
      fusion_type: p.model.config.fusion_type,
      pooling: p.model.config.pooling,
      text: { model_type: p.model.config.text_config.model_type, hidden_size: p.model.text_encoder.hiddenSize, num_hidden_layers: p.model.text_encoder.stages().layers.length },
      image: { model_type: p.model.config.image_config.model_type, hidden_size: p.model.image_encoder.hiddenSize, num_hidden_layers: p.model.image_encoder.stages().layers.length },
    },
    preprocessing: {
      text: { max_length: p.info.maxLength, padding: p.info.padding ?? 'longest', truncation: true },
      image: { size: p.image.size, resize: p.image.resize, resample: p.image.resample, mean: p.image.mean, std: p.image.std },
    },
    precision: o.precision ?? p.info.precision ?? 'fp32',
    device,
    limits: { max_body_bytes: o.maxBodyBytes, max_pixels: o.maxPixels, max_text_chars: o.maxTextChars, max_items: o.maxItems },
    batching: { max_batch: o.maxBatch, max_wait_ms: o.maxWaitMs },
  };

  /** One pair: the image's header checked against the pixel limit, then decoded and resized; the text tokenized. */
  async function prepare(bytes: Buffer, text: unknown, where: string): Promise<CollateItem> {
    if (typeof text !== 'string') throw new HttpError(400, `${where}.text: expected a string, received ${text === undefined ? 'nothing' : typeof text}`);
    if (text.length > o.maxTextChars) throw new HttpError(413, `${where}.text: ${text.length} characters, over the limit of ${o.maxTextChars} (serve --max-text-chars)`);
    if (!bytes.length) throw new HttpError(400, `${where}.image: empty (0 bytes)`);
    let meta: Metadata;
    try {
      meta = await sharp(bytes, { limitInputPixels: false }).metadata();
    } catch (e) {
      throw new HttpError(422, `${where}.image: not a decodable image (${(e as Error).message.split('\n')[0]})`);
    }
    const px = (meta.width ?? 0) * (meta.height ?? 0);
    if (px > o.maxPixels) throw new HttpError(413, `${where}.image: ${meta.width}x${meta.height} is ${px} pixels, over the limit of ${o.maxPixels} (serve --max-pixels)`);
    try {
      const img = await decodeImage(bytes, `${where}.image`, image);
      return { encoding: p.tokenizer.encode(text, p.info.maxLength), image: img, label: -1, index: 0 };
    } catch (e) {
      throw new HttpError(422, (e as Error).message);
    }
  }

  /** `prepared` is called once the request's pairs are ready to queue (before they are, when it fails) */
  async function predictRoute(req: IncomingMessage, url: URL, prepared: () => void): Promise<unknown> {
    const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    const body = await readBody(req, o.maxBodyBytes);
    let pending: Promise<CollateItem>[];
    if (type === 'application/json') {
      let json: unknown;
      try {
        json = JSON.parse(body.toString('utf8'));
      } catch (e) {
        throw new HttpError(400, `body: not valid JSON (${(e as Error).message})`);
      }
      const { inputs, where } = pairsOf(json);
      if (inputs.length > o.maxItems) throw new HttpError(413, `inputs: ${inputs.length} pairs, over the limit of ${o.maxItems} per request (serve --max-items)`);
      // every pair checked before any is decoded (a throw here leaves no decoding behind)
      const pairs = inputs.map((it, i) => {
        const at = where(i);
        if (typeof it !== 'object' || it === null || Array.isArray(it)) throw new HttpError(400, `${at}: expected an object {"image": base64, "text": string}, received ${JSON.stringify(it)?.slice(0, 40)}`);
        const { image, text } = it as { image?: unknown; text?: unknown };
        return { bytes: base64Bytes(image, `${at}.image`), text, at };
      });
      pending = pairs.map(({ bytes, text, at }) => prepare(bytes, text, at));
    } else if (type.startsWith('image/') || type === 'application/octet-stream') {
      pending = [prepare(body, url.searchParams.get('text') ?? undefined, 'request')];
    } else {
      throw new HttpError(415, `Content-Type ${JSON.stringify(type || '(none)')}: expected application/json ({"image": base64, "text": ...} or {"inputs": [...]}), or the image's bytes as image/* with ?text=...`);
    }
    // every pair decoded before any is queued: a request with one bad pair fails whole, and costs no forward pass
    const settled = await Promise.allSettled(pending);
    const bad = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    if (bad) throw bad.reason;
    const items = settled.map((s) => (s as PromiseFulfilledResult<CollateItem>).value);
    if (batcher.waiting + items.length > o.maxQueue) throw new HttpError(503, `busy: ${batcher.waiting} pairs are waiting for the model; retry shortly`);
    prepared();
    return { predictions: await batcher.submit(items) };
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const route = `${req.method} ${url.pathname}`;
    try {
      let out: unknown;
      if (route === 'GET /healthz') out = { status: 'ok', predictions: batcher.stats.items, batches: batcher.stats.batches };
      else if (route === 'GET /v1/metadata') out = metadata;
      else if (route === 'POST /v1/predict') {
        preparing++;
        let counted = true;
        const done = () => {
          if (counted) preparing--;
          counted = false;
        };
        try {
          out = await predictRoute(req, url, done);
        } finally {
          done();
          batcher.poke();
        }
      }
      else if (['/healthz', '/v1/metadata', '/v1/predict'].includes(url.pathname)) throw new HttpError(405, `${req.method} ${url.pathname}: method not allowed (${url.pathname === '/v1/predict' ? 'POST' : 'GET'} only)`);
      else throw new HttpError(404, `${url.pathname}: no such route (POST /v1/predict, GET /v1/metadata, GET /healthz)`);
      send(res, 200, out);
    } catch (e) {
      const status = e instanceof HttpError ? e.status : 500;
      if (status === 500) console.error(`mmtrain serve: ${route} failed: ${(e as Error).stack ?? e}`);
      // an unread body is left to the socket's close: the answer goes first
      if (status === 413 && !req.complete) res.setHeader('Connection', 'close');
      send(res, status, { error: { status, message: e instanceof HttpError ? e.message : `internal error: ${(e as Error).message}` } });
    }
  }

  const server = createServer((req, res) => void handle(req, res));
  server.requestTimeout = 60000;
  server.headersTimeout = 20000;
  server.on('clientError', (err, socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
    else socket.destroy(err);
  });

  return {
    server,
    stats: batcher.stats,
    listen: (port, host) => new Promise((resolve, reject) => {
      server.once('error', (e: NodeJS.ErrnoException) =>
        reject(new MmtrainError(`serve: cannot listen on ${host}:${port} (${e.code === 'EADDRINUSE' ? 'the port is in use; pick another with --port' : e.message})`)));
      server.listen(port, host, () => resolve(server.address() as AddressInfo));
    }),
    close: async () => {
      const closed = new Promise<void>((r) => server.close(() => r()));
      server.closeIdleConnections();
      await batcher.close();
      await closed;
    },
  };
}

/** The request's pairs: {"inputs": [...]} or one {"image", "text"} object; `where(i)` names pair i in messages. */
function pairsOf(json: unknown): { inputs: unknown[]; where: (i: number) => string } {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new HttpError(400, `body: expected a JSON object {"image": base64, "text": string} or {"inputs": [...]}, received ${Array.isArray(json) ? 'an array' : JSON.stringify(json)}`);
  }
  if ('inputs' in json) {
    const inputs = (json as { inputs: unknown }).inputs;
    if (!Array.isArray(inputs) || !inputs.length) throw new HttpError(400, `inputs: expected a non-empty array of {"image": base64, "text": string}, received ${JSON.stringify(inputs)?.slice(0, 40)}`);
    return { inputs, where: (i) => `inputs[${i}]` };
  }
  if (!('image' in json)) throw new HttpError(400, 'body: expected "image" (base64) and "text", or "inputs": [...]; received neither "image" nor "inputs"');
  return { inputs: [json], where: () => 'body' };
}

const BASE64 = /^[A-Za-z0-9+/_-]*={0,2}$/;

/** Standard or URL-safe base64, optionally as a data: URL; anything else is a 400 naming the field. */
function base64Bytes(v: unknown, where: string): Buffer {
  if (typeof v !== 'string') throw new HttpError(400, `${where}: expected the image as a base64 string, received ${v === undefined ? 'nothing' : typeof v}`);
  const s = v.replace(/^data:[^,]*;base64,/, '').replace(/\s+/g, '');
  if (!BASE64.test(s) || s.length % 4 === 1) throw new HttpError(400, `${where}: not valid base64 (standard or URL-safe, optionally a data: URL)`);
  return Buffer.from(s, 'base64');
}

/** The body, up to `limit` bytes: a 413 as soon as Content-Length or the bytes received go past it. */
function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) {
    return Promise.reject(new HttpError(413, `body: ${declared} bytes, over the limit of ${limit} (serve --max-body-mb)`));
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let n = 0;
    req.on('data', (c: Buffer) => {
      n += c.length;
      if (n > limit) {
        req.removeAllListeners('data');
        req.pause();
        reject(new HttpError(413, `body: over the limit of ${limit} bytes (serve --max-body-mb)`));
      } else {
        chunks.push(c);
      }
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', (e) => reject(new HttpError(400, `body: ${e.message}`)));
  });
}

function send(res: ServerResponse, status: number, body: unknown): void {
  if (res.headersSent) return;
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(text), 'Cache-Control': 'no-store' });
  res.end(text);
}
