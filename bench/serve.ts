// Load test of `mmtrain serve` on loopback: the demo model served by a child process, clients in this process
// sending one image-text pair per request (base64 JPEG in JSON) at 1, 8 and 64 concurrent clients, each level
// bounded in time and in requests. Reports requests/s, p50/p99 latency, errors and the server's RSS over the
// run, against the same model's in-process prediction throughput (`predictSamples`, batches of 32): the server's
// ceiling on this machine.
import { spawn } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { generateSynthetic, listCheckpoints, loadPredictor, resolveConfig, train } from '../src/index.js';
import { DEMO_IMAGE_SIZE, demoConfig } from '../src/cli/demo.js';
import { predictSamples } from '../src/train/inference.js';

export interface ServeLevel {
  clients: number;
  requests: number;
  errors: number;
  requests_per_s: number;
  p50_ms: number;
  p99_ms: number;
  /** pairs per forward pass during this level (the server's counters) */
  mean_batch: number;
  rss_mib_after: number;
}

export interface ServeBench {
  levels: ServeLevel[];
  rss_mib_start: number;
  rss_mib_end: number;
  /** the highest RSS sampled (every 200 ms) during the measured levels */
  rss_mib_max: number;
  in_process_pairs_per_s: number;
}

const rssMiB = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;
const quantile = (xs: number[], q: number) => xs.slice().sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))]!;

export async function serveLoad(workDir: string, root: string, seconds: number, maxRequests: number): Promise<ServeBench> {
  const data = join(workDir, 'data');
  await generateSynthetic({ out: data, n: 400, seed: 2, imageSize: DEMO_IMAGE_SIZE });
  rmSync(join(workDir, 'runs'), { recursive: true, force: true });
  const base = demoConfig(data, { out: join(workDir, 'runs') });
  const r = await train(resolveConfig({ ...base, train: { ...base.train, maxSteps: 5 }, eval: { every: 100000 }, log: { progress: 'none', report: false, tensorboard: false } }), { print: () => {} });
  const ckpt = listCheckpoints(r.runDir).pop()!;
  const rows = readFileSync(join(data, 'test.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { image: string; text: string });
  const bodies = rows.map((row) => JSON.stringify({ image: readFileSync(join(data, row.image)).toString('base64'), text: row.text }));

  // the ceiling: the same pairs predicted in-process, in batches of 32
  const p = loadPredictor(ckpt, { device: 'cpu' });
  const samples = rows.map((row, i) => ({ image: join(data, row.image), text: row.text, label: -1, where: `#${i}` }));
  let inProcess = 0;
  for (let round = 0; round < 4; round++) { // the first warms up; the best of the other three counts
    const t0 = performance.now();
    await predictSamples(p, samples, { batchSize: 32 });
    if (round) inProcess = Math.max(inProcess, samples.length / ((performance.now() - t0) / 1000));
  }
  p.dispose();

  const server = spawn(process.execPath, [join(root, 'dist', 'src', 'cli', 'main.js'), 'serve', ckpt, '--port', '0', '--device', 'cpu'], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const url = await new Promise<string>((resolve, reject) => {
      let out = '';
      server.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        const m = /(http:\/\/[^ ]+:\d+)/.exec(out);
        if (m) resolve(m[1]!);
      });
      server.on('exit', (code) => reject(new Error(`mmtrain serve exited with ${code} before listening`)));
    });
    const predict = async (body: string): Promise<boolean> => {
      const res = await fetch(`${url}/v1/predict`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body });
      await res.arrayBuffer();
      return res.status === 200;
    };
    const health = async () => (await (await fetch(`${url}/healthz`)).json()) as { predictions: number; batches: number };
    // warm-up: every level, the last as long as a measured one, so that the allocators have settled (RSS grows by
    // ~12 MiB over the first 30 s at 64 clients, then stays flat: measured over 60 s, 27,700 requests)
    const levels: ServeLevel[] = [];
    for (const clients of [1, 8, 64]) await load(clients, clients === 64 ? seconds : 1, maxRequests);
    const rssStart = rssMiB(server.pid!);
    let rssMax = rssStart;
    const sampler = setInterval(() => (rssMax = Math.max(rssMax, rssMiB(server.pid!))), 200);
    for (const clients of [1, 8, 64]) {
      const before = await health();
      const { lat, errors, wall } = await load(clients, seconds, maxRequests);
      const after = await health();
      levels.push({
        clients, requests: lat.length, errors, requests_per_s: lat.length / wall, p50_ms: quantile(lat, 0.5), p99_ms: quantile(lat, 0.99),
        mean_batch: ((after.predictions - before.predictions) / (after.batches - before.batches)), rss_mib_after: rssMiB(server.pid!),
      });
    }
    clearInterval(sampler);
    const rssEnd = rssMiB(server.pid!);
    return { levels, rss_mib_start: rssStart, rss_mib_end: rssEnd, rss_mib_max: rssMax, in_process_pairs_per_s: inProcess };

    /** `clients` clients, each sending its next request when the last is answered, for `seconds` or `count` requests */
    async function load(clients: number, seconds: number, count: number) {
      const lat: number[] = [];
      let errors = 0;
      let sent = 0;
      const start = performance.now();
      const stopAt = start + seconds * 1000;
      await Promise.all(Array.from({ length: clients }, async (_, c) => {
        let k = c;
        while (performance.now() < stopAt && sent < count) {
          sent++;
          const t = performance.now();
          try {
            if (!(await predict(bodies[k++ % bodies.length]!))) errors++;
          } catch {
            errors++;
          }
          lat.push(performance.now() - t);
        }
      }));
      return { lat, errors, wall: (performance.now() - start) / 1000 };
    }
  } finally {
    server.kill('SIGKILL');
  }
}
