// Pretraining corpora for the encoders, drawn from the world of the synthetic matching task (synth.ts: the same
// colours, shapes, relations, placement, sizes and backgrounds) but disjoint from the task's samples, so that a
// text encoder pretrained by masked language modelling and an image encoder pretrained by masked-image modelling
// carry features that transfer to the task without having seen it. Captions are multi-clause descriptions with
// redundancy ("a red circle above a blue square . the circle is red and the square is blue ."): a masked colour or
// shape word can be inferred from the rest of the line, which is what teaches the text encoder to bind colours to
// shapes. Probe sets label the task's own matching samples with the colour or shape of their first object, to
// measure whether an encoder's pooled vector carries the task's attributes.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { checkInt, invalid, MmtrainError } from '../errors.js';
import { makeFolder, writeFileAtomic, writeJsonAtomic } from '../files.js';
import { hashSeed, mulberry32 } from './random.js';
import {
  COLORS, RELATIONS, SHAPES, drawBackground, place, synthesizeRecords, synthesizeScenes, writeSceneJpeg,
  type Obj, type SynthOptions, type SynthRecord,
} from './synth.js';

export interface CorpusOptions {
  out: string;
  /** caption lines for text pretraining (default 20000) */
  captions?: number;
  /** images for image pretraining (default 4000) */
  images?: number;
  imageSize?: number; // default 64
  seed?: number; // default 1; the corpus's own random stream
  /** the task whose samples the corpus must not contain (the options generateSynthetic got, without out) */
  exclude?: Omit<SynthOptions, 'out'>;
}

type Relation = (typeof RELATIONS)[number];

/** One scene of the corpus: one or two objects (for two, `relation` is what the first is of the second). */
export interface PretrainScene {
  objects: Obj[];
  relation: Relation | null;
  background: string;
}

/** One image of the corpus as planned: its file name, its description, its label and what it shows. */
export interface PretrainImage extends PretrainScene {
  image: string;
  text: string;
  /** colour of the first object */
  label: string;
}

export interface PretrainPlan {
  captions: string[];
  images: PretrainImage[];
  droppedCaptions: number;
  droppedImages: number;
  /** the options as resolved (defaults filled in) */
  options: { captions: number; images: number; imageSize: number; seed: number; exclude: Omit<SynthOptions, 'out'> | null };
}

const COLOR_NAMES = Object.keys(COLORS);
const OPPOSITE: Record<Relation, Relation> = {
  'to the left of': 'to the right of', 'to the right of': 'to the left of', above: 'below', below: 'above',
};
// tags that separate the corpus's streams from each other and from the task's (FNV of the seed and the tag)
const CAPTION_STREAM = 0x63617074; // "capt"
const IMAGE_STREAM = 0x696d6167; // "imag"

function pick<T>(xs: readonly T[], rnd: () => number): T {
  return xs[Math.floor(rnd() * xs.length)]!;
}

/** A stream seed derived from (seed, tag) that is never the task's own stream seed. */
function streamSeed(seed: number, tag: number, taskSeed: number | null): number {
  let s = hashSeed(seed, tag);
  const avoid = new Set([seed >>> 0, ...(taskSeed === null ? [] : [taskSeed >>> 0])]);
  while (avoid.has(s)) s = hashSeed(s, tag);
  return s;
}

/**
 * What identifies a rendered scene: background and each object's colour, shape, centre and size as fractions of
 * the image size (so a scene drawn at another resolution is still the same picture), objects in sorted order (two
 * objects listed in either order are the same picture).
 */
export function sceneSignature(objects: readonly Obj[], imageSize: number, background: string): string {
  const parts = objects.map((o) => `${o.color} ${o.shape} ${o.x / imageSize} ${o.y / imageSize} ${o.r / imageSize}`).sort();
  return `${background}|${parts.join('|')}`;
}

/** One or two objects placed as the task places them, and a background drawn as the task draws it. */
function drawScene(S: number, rnd: () => number): PretrainScene {
  const count = rnd() < 0.5 ? 1 : 2;
  const relation = count === 2 ? pick(RELATIONS, rnd) : null;
  const objects = place(count, S, rnd, relation ?? undefined);
  return { objects, relation, background: drawBackground(rnd) };
}

const article = (word: string) => (/^[aeiou]/.test(word) ? 'an' : 'a');
/** "a small red circle", "an orange square": an article before the words given, empty words left out. */
function np(...words: string[]): string {
  const ws = words.filter((w) => w !== '');
  return `${article(ws[0]!)} ${ws.join(' ')}`;
}

/** Where an object is, by thirds of the frame: "in the top left corner", "at the top", "in the centre", ... */
export function positionPhrase(o: Obj, S: number): string {
  const col = 3 * o.x < S ? 'left' : 3 * o.x > 2 * S ? 'right' : 'centre';
  const row = 3 * o.y < S ? 'top' : 3 * o.y > 2 * S ? 'bottom' : 'middle';
  if (row === 'middle') return col === 'centre' ? 'in the centre' : `on the ${col}`;
  return col === 'centre' ? `at the ${row}` : `in the ${row} ${col} corner`;
}

// the task's size ranges (synth.ts place): a single object r in S*[0.18, 0.28], each of two in S*[0.10, 0.16]
const SIZE_RANGE: Record<number, [number, number]> = { 1: [0.18, 0.28], 2: [0.1, 0.16] };

/** "small" in the lower third of the task's size range for scenes with this many objects, "large" in the upper, else "". */
export function sizeWord(o: Obj, count: number, S: number): string {
  const [lo, hi] = SIZE_RANGE[count]!;
  const t = (o.r / S - lo) / (hi - lo);
  return t < 1 / 3 ? 'small' : t > 2 / 3 ? 'large' : '';
}

/** The shortest unambiguous name of `o` next to `other`: its shape, or colour and shape when both share the shape. */
const ref = (o: Obj, other: Obj) => (o.shape === other.shape ? `${o.color} ${o.shape}` : o.shape);

/** The redundant clause naming both objects' colours. */
function colours(a: Obj, b: Obj): string {
  return a.shape !== b.shape ? `the ${a.shape} is ${a.color} and the ${b.shape} is ${b.color}` : `one ${a.shape} is ${a.color} and the other is ${b.color}`;
}

/**
 * A true description of a scene, by a template drawn from `rnd`. With `bare`, the short forms of the task's own
 * captions ("a red circle", "a red circle above a blue square", "a red circle and a blue square") are among the
 * templates; everything else has two clauses, the second restating what the first said.
 */
export function describeScene(scene: PretrainScene, S: number, rnd: () => number, bare: boolean): string {
  const objs = scene.objects;
  if (objs.length === 1) {
    const o = objs[0]!;
    const z = sizeWord(o, 1, S);
    const p = positionPhrase(o, S);
    const templates = [
      () => `there is ${np(z, o.color, o.shape)} ${p} . it is ${np(o.shape)} and it is ${o.color} .`,
      () => `${np(z, o.color, o.shape)} ${p} . the ${o.shape} is ${o.color} .`,
      () => `one ${o.color} ${o.shape} ${p} . there is one shape and it is ${np(o.color, o.shape)} .`,
      () => `the picture shows ${np(z, o.color, o.shape)} . the ${o.color} shape is ${np(o.shape)} .`,
      ...(bare ? [() => np(o.color, o.shape)] : []),
    ];
    return pick(templates, rnd)();
  }
  const [a, b] = objs as [Obj, Obj];
  const rel = scene.relation!;
  const za = sizeWord(a, 2, S);
  const zb = sizeWord(b, 2, S);
  // a size comparison only where the difference is visible
  const bigger = Math.abs(a.r - b.r) >= Math.max(2, Math.round(0.03 * S)) ? (a.r > b.r ? [a, b] : [b, a]) : null;
  const templates = [
    () => `${np(za, a.color, a.shape)} ${rel} ${np(zb, b.color, b.shape)} . ${colours(a, b)} .`,
    () => `there are two shapes : ${np(a.color, a.shape)} and ${np(b.color, b.shape)} . the ${a.color} ${a.shape} is ${rel} the ${b.color} ${b.shape} .`,
    () => `${np(b.color, b.shape)} ${OPPOSITE[rel]} ${np(a.color, a.shape)} . ${colours(b, a)} .`,
    () => `${np(a.color, a.shape)} ${positionPhrase(a, S)} and ${np(b.color, b.shape)} ${positionPhrase(b, S)} . the ${ref(a, b)} is ${rel} the ${ref(b, a)} .`,
    () => bigger
      ? `two shapes , ${np(a.color, a.shape)} and ${np(b.color, b.shape)} . the ${ref(bigger[0]!, bigger[1]!)} is larger than the ${ref(bigger[1]!, bigger[0]!)} .`
      : `two shapes , ${np(a.color, a.shape)} and ${np(b.color, b.shape)} . the ${ref(a, b)} is ${rel} the ${ref(b, a)} .`,
    ...(bare ? [() => `${np(a.color, a.shape)} ${rel} ${np(b.color, b.shape)}`, () => `${np(a.color, a.shape)} and ${np(b.color, b.shape)}`] : []),
  ];
  return pick(templates, rnd)();
}

function resolve(o: Omit<CorpusOptions, 'out'>): PretrainPlan['options'] {
  if (o === null || typeof o !== 'object') invalid('options', 'an object', o);
  const captions = checkInt('captions', o.captions ?? 20000, 0, 10_000_000);
  const images = checkInt('images', o.images ?? 4000, 0, 1_000_000);
  const imageSize = checkInt('imageSize', o.imageSize ?? 64, 16, 1024);
  const seed = checkInt('seed', o.seed ?? 1, 0);
  const ex = o.exclude;
  if (ex !== undefined && (ex === null || typeof ex !== 'object' || Array.isArray(ex))) invalid('exclude', "an object (the task's synthetic options)", ex);
  return { captions, images, imageSize, seed, exclude: ex ?? null };
}

/** The task's samples: its captions and its scenes' signatures; a bad task option is named as exclude.<option>. */
function taskSamples(exclude: Omit<SynthOptions, 'out'> | null): { captions: Set<string>; signatures: Set<string>; seed: number | null } {
  if (exclude === null) return { captions: new Set(), signatures: new Set(), seed: null };
  let scenes: ReturnType<typeof synthesizeScenes>;
  try {
    scenes = synthesizeScenes(exclude);
  } catch (e) {
    if (e instanceof MmtrainError) throw new MmtrainError(e.message.replace(/ for (\w+) but received/, ' for exclude.$1 but received'), { cause: e });
    throw e;
  }
  return {
    captions: new Set(scenes.samples.map((s) => s.record.text)),
    signatures: new Set(scenes.samples.map((s) => sceneSignature(s.objs, scenes.imageSize, s.bg))),
    seed: exclude.seed ?? 1,
  };
}

/** Fills `count` items from candidates, dropping those `collides` rejects; stops with an error when almost all collide. */
function fill<T>(count: number, what: string, candidate: () => T, collides: (x: T) => boolean): { items: T[]; dropped: number } {
  const items: T[] = [];
  let dropped = 0;
  const limit = 50 * count + 1000;
  while (items.length < count) {
    const x = candidate();
    if (collides(x)) {
      if (++dropped > limit) throw new MmtrainError(`${what}: ${dropped} candidates collided with the excluded task for ${items.length} kept; the task covers nearly everything this corpus can draw (a larger imageSize gives more distinct scenes)`);
    } else items.push(x);
  }
  return { items, dropped };
}

/** Everything generatePretrainCorpus writes, as data, without rendering or writing anything. */
export function planPretrainCorpus(o: Omit<CorpusOptions, 'out'>): PretrainPlan {
  const options = resolve(o);
  const { captions: n, images: m, imageSize: S, seed } = options;
  const task = taskSamples(options.exclude);
  const rc = mulberry32(streamSeed(seed, CAPTION_STREAM, task.seed));
  const caps = fill(n, 'captions', () => describeScene(drawScene(S, rc), S, rc, true), (line) => task.captions.has(line));
  const ri = mulberry32(streamSeed(seed, IMAGE_STREAM, task.seed));
  const width = Math.max(5, String(m - 1).length);
  let index = 0;
  const imgs = fill(m, 'images', () => drawScene(S, ri), (s) => task.signatures.has(sceneSignature(s.objects, S, s.background)));
  const images = imgs.items.map((s): PretrainImage => ({
    ...s,
    image: `images/${String(index++).padStart(width, '0')}.jpg`,
    // the multi-clause templates only: the short ones are the task's caption forms
    text: describeScene(s, S, ri, false),
    label: s.objects[0]!.color,
  }));
  return { captions: caps.items, images, droppedCaptions: caps.dropped, droppedImages: imgs.dropped, options };
}

/**
 * Writes captions.txt (one scene description per line), images/NNNNN.jpg and images.jsonl ({image, text, label}:
 * the image's own description and, as label, the colour of its first object), and corpus.json (the options, counts,
 * and how many candidates were dropped for colliding with the task). Deterministic for its options.
 */
export async function generatePretrainCorpus(o: CorpusOptions): Promise<{ captions: number; images: number; droppedCaptions: number; droppedImages: number }> {
  if (o === null || typeof o !== 'object') invalid('options', 'an object', o);
  if (typeof o.out !== 'string' || o.out === '') invalid('out', 'a folder path', o.out);
  const plan = planPretrainCorpus(o);
  const S = plan.options.imageSize;
  makeFolder(join(o.out, 'images'));
  writeFileAtomic(join(o.out, 'captions.txt'), plan.captions.map((l) => `${l}\n`).join(''));
  const jobs: Promise<void>[] = [];
  for (const im of plan.images) {
    jobs.push(writeSceneJpeg(im.objects, S, im.background, join(o.out, im.image)));
    if (jobs.length >= 32) await Promise.all(jobs.splice(0));
  }
  await Promise.all(jobs);
  writeFileAtomic(join(o.out, 'images.jsonl'), plan.images.map((r) => `${JSON.stringify({ image: r.image, text: r.text, label: r.label })}\n`).join(''));
  const result = { captions: plan.captions.length, images: plan.images.length, droppedCaptions: plan.droppedCaptions, droppedImages: plan.droppedImages };
  // written last: a folder with corpus.json is complete
  writeJsonAtomic(join(o.out, 'corpus.json'), {
    options: plan.options,
    counts: { captions: result.captions, images: result.images },
    dropped: { captions: result.droppedCaptions, images: result.droppedImages },
    labels: COLOR_NAMES,
    generator: 'mmtrain synth-pretrain',
  });
  return result;
}

const FIRST_OBJECT = new RegExp(`\\b(${COLOR_NAMES.join('|')}) (${SHAPES.join('|')})\\b`);

/** The first object a caption names, read from its text. */
function firstNamed(r: SynthRecord): { color: string; shape: string } {
  const m = FIRST_OBJECT.exec(r.text);
  const first = r.objects[0];
  // a matching caption describes the image's objects in order
  if (!m || !first || m[1] !== first.color || m[2] !== first.shape) throw new MmtrainError(`${r.image}: the caption "${r.text}" does not name the image's first object first`);
  return { color: m[1]!, shape: m[2]! };
}

/**
 * Probe manifests for the matching task's attributes, written next to the task's manifests (they reference its
 * images): probe-color.jsonl and probe-shape.jsonl, one record {image, text, label} per MATCHING sample (label 1,
 * where the caption is true of the image) of the task's val and test splits, the label being the colour (or shape)
 * name of the caption's first object. The val samples come first (counts.val of them), then the test samples.
 * Returns the files and counts (records per file, and per split).
 */
export function writeProbeSets(taskDir: string, task: Omit<SynthOptions, 'out'>): { files: string[]; counts: Record<string, number> } {
  if (typeof taskDir !== 'string' || taskDir === '') invalid('taskDir', 'the folder generateSynthetic wrote', taskDir);
  if (task === null || typeof task !== 'object' || Array.isArray(task)) invalid('task', "an object (the task's synthetic options)", task);
  const parts = synthesizeRecords(task);
  // the folder must hold the data set these options give, or the labels would describe other images
  for (const split of ['val', 'test'] as const) {
    const file = join(taskDir, `${split}.jsonl`);
    if (!existsSync(file)) throw new MmtrainError(`${file}: not found; taskDir must be the folder generateSynthetic wrote for these task options`);
    const lines = readFileSync(file, 'utf8').split('\n').filter((l) => l !== '');
    const expected = parts[split].map((r) => JSON.stringify({ image: r.image, text: r.text, label: r.label }));
    const bad = expected.findIndex((l, i) => lines[i] !== l);
    if (bad >= 0 || lines.length !== expected.length) {
      throw new MmtrainError(`${file}: ${bad >= 0 ? `line ${bad + 1}` : `${lines.length} lines (expected ${expected.length})`} differs from what the task options give; pass as task the options generateSynthetic got for ${taskDir}`);
    }
  }
  const val = parts.val.filter((r) => r.label === 1);
  const test = parts.test.filter((r) => r.label === 1);
  const matching = [...val, ...test];
  const files: string[] = [];
  const counts: Record<string, number> = {};
  for (const attr of ['color', 'shape'] as const) {
    const name = `probe-${attr}.jsonl`;
    const file = join(taskDir, name);
    writeFileAtomic(file, matching.map((r) => `${JSON.stringify({ image: r.image, text: r.text, label: firstNamed(r)[attr] })}\n`).join(''));
    files.push(file);
    counts[name] = matching.length;
  }
  // binding: "the colour of the circle" in captions naming a circle and another shape, in either order, in other
  // colours. Each colour word is in the text, so a bag of words cannot tell which is the circle's: the encoder's
  // vector must bind colours to shapes (which the corpus's "the circle is red" clauses teach). Text only: each record
  // borrows a matching sample's image.
  const rnd = mulberry32(hashSeed(task.seed ?? 1, 0xb1d));
  const colors = Object.keys(COLORS);
  const others = SHAPES.filter((s) => s !== 'circle');
  const a = (c: string) => (/^[aeiou]/.test(c) ? 'an' : 'a');
  const binding = matching.map((r) => {
    const circle = colors[Math.floor(rnd() * colors.length)]!;
    const rest = colors.filter((c) => c !== circle);
    const other = { color: rest[Math.floor(rnd() * rest.length)]!, shape: others[Math.floor(rnd() * others.length)]! };
    const parts = [`${a(circle)} ${circle} circle`, `${a(other.color)} ${other.color} ${other.shape}`];
    if (rnd() < 0.5) parts.reverse();
    return `${JSON.stringify({ image: r.image, text: parts.join(' and '), label: circle })}\n`;
  });
  const bindingFile = join(taskDir, 'probe-binding.jsonl');
  writeFileAtomic(bindingFile, binding.join(''));
  files.push(bindingFile);
  counts['probe-binding.jsonl'] = binding.length;
  counts.val = val.length;
  counts.test = test.length;
  return { files, counts };
}
