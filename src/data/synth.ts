// The embedded default data set: coloured shapes rendered as SVG through sharp and written as JPEG, with template
// captions. Task "match": label 1 when the caption is true of the image, 0 when one attribute was changed. The
// image is drawn before the label is chosen and the changed caption has the same distribution as a true one, so
// neither modality alone predicts the label. Task "imbalanced": a cue phrase in the caption agrees with the label
// 80% of the time, so text alone reaches about 80% and the image carries the rest.
import { join } from 'node:path';
import sharp from 'sharp';
import { checkInt, invalid } from '../errors.js';
import { mulberry32 } from './image.js';
import { makeFolder, writeFileAtomic, writeJsonAtomic } from '../files.js';

export const COLORS: Record<string, string> = {
  red: '#d62728', green: '#2ca02c', blue: '#1f77b4', yellow: '#f5d000', purple: '#9467bd', orange: '#ff7f0e',
};
export const SHAPES = ['circle', 'square', 'triangle', 'diamond'] as const;
export const RELATIONS = ['to the left of', 'to the right of', 'above', 'below'] as const;
export type Task = 'match' | 'imbalanced';
export type Difficulty = 'easy' | 'medium' | 'hard';

export interface SynthOptions {
  out: string;
  n?: number;
  seed?: number;
  task?: Task;
  difficulty?: Difficulty;
  imageSize?: number;
  /** fractions of train / val (test gets the rest) */
  split?: [number, number];
}

/** One drawn object: colour name, shape, centre and half-size in pixels. */
export interface Obj {
  color: string;
  shape: (typeof SHAPES)[number];
  x: number;
  y: number;
  r: number;
}

export interface SynthRecord {
  image: string;
  text: string;
  label: number;
  /** what the image shows, for analysis (not read by training) */
  objects: { color: string; shape: string }[];
  changed: string | null;
}

const COLOR_NAMES = Object.keys(COLORS);

function pick<T>(xs: readonly T[], rnd: () => number): T {
  return xs[Math.floor(rnd() * xs.length)]!;
}

function shapeSvg(o: Obj): string {
  const fill = COLORS[o.color]!;
  switch (o.shape) {
    case 'circle': return `<circle cx="${o.x}" cy="${o.y}" r="${o.r}" fill="${fill}"/>`;
    case 'square': return `<rect x="${o.x - o.r}" y="${o.y - o.r}" width="${2 * o.r}" height="${2 * o.r}" fill="${fill}"/>`;
    case 'triangle': return `<polygon points="${o.x},${o.y - o.r} ${o.x + o.r},${o.y + o.r} ${o.x - o.r},${o.y + o.r}" fill="${fill}"/>`;
    case 'diamond': return `<polygon points="${o.x},${o.y - o.r} ${o.x + o.r},${o.y} ${o.x},${o.y + o.r} ${o.x - o.r},${o.y}" fill="${fill}"/>`;
  }
}

function svg(objs: Obj[], S: number, bg: string): string {
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${S}" height="${S}"><rect width="${S}" height="${S}" fill="${bg}"/>${objs.map(shapeSvg).join('')}</svg>`;
}

const phrase = (o: { color: string; shape: string }) => `${/^[aeiou]/.test(o.color) ? 'an' : 'a'} ${o.color} ${o.shape}`;

/** Objects placed so that the relation between two of them is unambiguous. */
export function place(count: number, S: number, rnd: () => number, relation?: (typeof RELATIONS)[number]): Obj[] {
  // a single object may fill more of the frame; two must fit side by side
  const r = count === 1 ? () => Math.round(S * (0.18 + rnd() * 0.1)) : () => Math.round(S * (0.1 + rnd() * 0.06));
  const objs: Obj[] = [];
  const used = new Set<string>();
  for (let i = 0; i < count; i++) {
    let color: string;
    let shape: Obj['shape'];
    do {
      color = pick(COLOR_NAMES, rnd);
      shape = pick(SHAPES, rnd);
    } while (used.has(`${color} ${shape}`));
    used.add(`${color} ${shape}`);
    objs.push({ color, shape, x: 0, y: 0, r: r() });
  }
  const lo = (o: Obj) => o.r + 1;
  const hi = (o: Obj) => S - o.r - 1;
  const within = (o: Obj, a: number, b: number) => Math.round(Math.max(lo(o), a) + rnd() * Math.max(0, Math.min(hi(o), b) - Math.max(lo(o), a)));
  if (count === 1) {
    const o = objs[0]!;
    o.x = within(o, 0, S);
    o.y = within(o, 0, S);
  } else {
    const [a, b] = objs as [Obj, Obj];
    const rel = relation ?? pick(RELATIONS, rnd);
    // a is `rel` b: separate them along one axis, anywhere along the other.
    const half = S / 2;
    const horizontal = rel === 'to the left of' || rel === 'to the right of';
    const first = rel === 'to the left of' || rel === 'above'; // a in the lower-coordinate half
    const [pa, pb] = first ? [[0, half - 2], [half + 2, S]] : [[half + 2, S], [0, half - 2]];
    if (horizontal) {
      a.x = within(a, pa![0]!, pa![1]!);
      b.x = within(b, pb![0]!, pb![1]!);
      a.y = within(a, 0, S);
      b.y = within(b, 0, S);
    } else {
      a.y = within(a, pa![0]!, pa![1]!);
      b.y = within(b, pb![0]!, pb![1]!);
      a.x = within(a, 0, S);
      b.x = within(b, 0, S);
    }
  }
  return objs;
}

const OPPOSITE: Record<string, (typeof RELATIONS)[number]> = {
  'to the left of': 'to the right of', 'to the right of': 'to the left of', above: 'below', below: 'above',
};

/** One sample: image objects, the true caption's parts, and a caption with one attribute changed for label 0. */
function makeSample(difficulty: Difficulty, S: number, rnd: () => number) {
  const relation = difficulty === 'hard' ? pick(RELATIONS, rnd) : undefined;
  const objs = place(difficulty === 'easy' ? 1 : 2, S, rnd, relation);
  const label = rnd() < 0.5 ? 1 : 0;
  const described = objs.map((o) => ({ color: o.color, shape: o.shape as string }));
  let rel = relation as string | undefined;
  let changed: string | null = null;
  if (label === 0) {
    const present = new Set(described.map((d) => `${d.color} ${d.shape}`));
    const kinds = difficulty === 'hard' ? ['color', 'shape', 'relation'] : ['color', 'shape'];
    const kind = pick(kinds, rnd);
    if (kind === 'relation') {
      rel = OPPOSITE[rel!];
      changed = 'relation';
    } else {
      const which = Math.floor(rnd() * described.length);
      const d = described[which]!;
      // a changed attribute that describes no object in the image
      const options = kind === 'color'
        ? COLOR_NAMES.filter((c) => c !== d.color && !present.has(`${c} ${d.shape}`)).map((c) => ({ color: c, shape: d.shape }))
        : SHAPES.filter((s) => s !== d.shape && !present.has(`${d.color} ${s}`)).map((s) => ({ color: d.color, shape: s as string }));
      described[which] = pick(options, rnd);
      changed = kind;
    }
  }
  let text: string;
  if (difficulty === 'easy') text = phrase(described[0]!);
  else if (difficulty === 'medium') text = `${phrase(described[0]!)} and ${phrase(described[1]!)}`;
  else text = `${phrase(described[0]!)} ${rel} ${phrase(described[1]!)}`;
  return { objs, text, label, changed };
}

export interface PlannedSample { record: SynthRecord; objs: ReturnType<typeof makeSample>['objs']; bg: string }

/** Every sample's record, objects and background, in order: a pure function of the options. */
function planSamples(opts: Omit<SynthOptions, 'out'>) {
  const n = checkInt('n', opts.n ?? 4000, 10, 10_000_000);
  const seed = checkInt('seed', opts.seed ?? 1, 0);
  const S = checkInt('imageSize', opts.imageSize ?? 64, 16, 1024);
  const task = opts.task ?? 'match';
  const difficulty = opts.difficulty ?? 'easy';
  if (task !== 'match' && task !== 'imbalanced') invalid('task', '"match" or "imbalanced"', task);
  if (!['easy', 'medium', 'hard'].includes(difficulty)) invalid('difficulty', '"easy", "medium" or "hard"', difficulty);
  const rnd = mulberry32(seed);
  const width = String(n - 1).length;
  const samples: PlannedSample[] = [];
  for (let i = 0; i < n; i++) {
    const s = makeSample(difficulty, S, rnd);
    let text = s.text;
    if (task === 'imbalanced') {
      // the cue agrees with the label 80% of the time
      const agree = rnd() < 0.8;
      const cue = (s.label === 1) === agree ? 'this shows' : 'maybe';
      text = `${cue} ${text}`;
    }
    const bg = drawBackground(rnd);
    const name = `images/${String(i).padStart(width, '0')}.jpg`;
    samples.push({
      record: { image: name, text, label: s.label, objects: s.objs.map((o) => ({ color: o.color, shape: o.shape })), changed: s.changed },
      objs: s.objs, bg,
    });
  }
  const [fTrain, fVal] = opts.split ?? [0.8, 0.1];
  const nTrain = Math.round(n * fTrain);
  const nVal = Math.round(n * fVal);
  const records = samples.map((p) => p.record);
  const parts = { train: records.slice(0, nTrain), val: records.slice(nTrain, nTrain + nVal), test: records.slice(nTrain + nVal) };
  return { samples, parts, n, seed, S, task, difficulty };
}

/** The background of a sample: one draw of `rnd`, a light grey level in [225, 250). */
export function drawBackground(rnd: () => number): string {
  const level = 225 + Math.floor(rnd() * 25);
  return `rgb(${level},${level},${level})`;
}

/** Renders objects on a background as generateSynthetic does (SVG through sharp, JPEG quality 90) to `path`. */
export async function writeSceneJpeg(objs: Obj[], S: number, bg: string, path: string): Promise<void> {
  await sharp(Buffer.from(svg(objs, S, bg))).jpeg({ quality: 90 }).toFile(path);
}

/** Every sample generateSynthetic would draw (record, objects, background) and the image size, without rendering. */
export function synthesizeScenes(opts: Omit<SynthOptions, 'out'>): { samples: PlannedSample[]; imageSize: number } {
  const { samples, S } = planSamples(opts);
  return { samples, imageSize: S };
}

/** The records generateSynthetic would write for these options, without rendering or writing anything. */
export function synthesizeRecords(opts: Omit<SynthOptions, 'out'>): { train: SynthRecord[]; val: SynthRecord[]; test: SynthRecord[] } {
  return planSamples(opts).parts;
}

/** Writes images/ and train/val/test JSONL manifests; returns the records. Deterministic for a seed. */
export async function generateSynthetic(opts: SynthOptions): Promise<{ train: SynthRecord[]; val: SynthRecord[]; test: SynthRecord[] }> {
  const { samples, parts, n, seed, S, task, difficulty } = planSamples(opts);
  const out = opts.out;
  makeFolder(join(out, 'images'));
  const jobs: Promise<void>[] = [];
  for (const p of samples) {
    jobs.push(writeSceneJpeg(p.objs, S, p.bg, join(out, p.record.image)));
    if (jobs.length >= 32) await Promise.all(jobs.splice(0));
  }
  await Promise.all(jobs);
  for (const [split, recs] of Object.entries(parts)) {
    writeFileAtomic(join(out, `${split}.jsonl`), recs.map((r) => JSON.stringify({ image: r.image, text: r.text, label: r.label })).join('\n') + '\n');
  }
  const info = { task, difficulty, n, seed, imageSize: S, labels: ['mismatch', 'match'], generator: 'mmtrain synth' };
  writeJsonAtomic(join(out, 'dataset.json'), info);
  return parts;
}
