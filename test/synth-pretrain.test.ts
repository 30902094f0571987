// Pretraining corpora from the synthetic task's world: deterministic, disjoint from the task's captions and images,
// every description true of its image, the task's vocabulary covered; probe sets over the task's matching samples.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generatePretrainCorpus, planPretrainCorpus, sceneSignature, writeProbeSets, type PretrainImage } from '../src/data/synth-pretrain.js';
import { COLORS, RELATIONS, SHAPES, generateSynthetic, synthesizeRecords, synthesizeScenes, type SynthOptions } from '../src/data/synth.js';

const C = Object.keys(COLORS).join('|');
const SH = SHAPES.join('|');
const REL = RELATIONS.join('|');
const OBJ = `(?:(?:${C}) )?(?:${SH})`; // "circle" or "red circle"

const tmp = () => mkdtempSync(join(tmpdir(), 'mmtrain-pre-'));
const lines = (f: string) => readFileSync(f, 'utf8').split('\n').filter((l) => l !== '');
const sha = (f: string) => createHash('sha256').update(readFileSync(f)).digest('hex');

/** Every file under a folder with its hash. */
function tree(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const e of readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (!e.isFile()) continue;
    const p = join(e.parentPath, e.name);
    out[p.slice(dir.length)] = sha(p);
  }
  return out;
}

/**
 * Checks a description against the scene's objects without the generator's own code: every colour-shape pair
 * named is an object and every object is named; attribute, relation, size, position and count clauses agree with
 * the objects' colours, shapes and coordinates. Returns the number of clauses checked.
 */
function checkTrue(im: PretrainImage, S: number): number {
  const objs = im.objects;
  const t = im.text;
  const where = `${t} (${JSON.stringify(objs)})`;
  let checked = 0;
  const resolve = (ref: string) => {
    const ws = ref.split(' ');
    const found = objs.filter((o) => (ws.length === 2 ? o.color === ws[0] && o.shape === ws[1] : o.shape === ws[0]));
    assert.equal(found.length, 1, `"${ref}" names one object: ${where}`);
    return found[0]!;
  };
  const named = new Set([...t.matchAll(new RegExp(`\\b(${C}) (${SH})\\b`, 'g'))].map((m) => `${m[1]} ${m[2]}`));
  assert.deepEqual([...named].sort(), objs.map((o) => `${o.color} ${o.shape}`).sort(), `objects named: ${where}`);
  for (const m of t.matchAll(new RegExp(`\\bthe (${OBJ}) is (${C}) `, 'g'))) {
    assert.equal(resolve(m[1]!).color, m[2], where);
    checked++;
  }
  for (const m of t.matchAll(new RegExp(`\\bthe (${C}) shape is an? (${SH})\\b`, 'g'))) {
    const found = objs.filter((o) => o.color === m[1]);
    assert.equal(found.length, 1, `"the ${m[1]} shape" names one object: ${where}`);
    assert.equal(found[0]!.shape, m[2], where);
    checked++;
  }
  for (const m of t.matchAll(new RegExp(`\\bit is an? (${SH}) and it is (${C}) `, 'g'))) {
    assert.equal(objs.length, 1, where);
    assert.deepEqual([objs[0]!.shape, objs[0]!.color], [m[1], m[2]], where);
    checked++;
  }
  for (const m of t.matchAll(new RegExp(`\\bone (${SH}) is (${C}) and the other is (${C}) `, 'g'))) {
    assert.deepEqual(objs.map((o) => o.shape), [m[1], m[1]], where);
    assert.deepEqual(objs.map((o) => o.color).sort(), [m[2], m[3]].sort(), where);
    checked++;
  }
  for (const m of t.matchAll(new RegExp(`\\b(?:an?|the) (?:(?:small|large) )?(${OBJ})(?: is)? (${REL}) (?:an?|the) (?:(?:small|large) )?(${OBJ})\\b`, 'g'))) {
    const [a, b] = [resolve(m[1]!), resolve(m[3]!)];
    const ok = { 'to the left of': a.x < b.x, 'to the right of': a.x > b.x, above: a.y < b.y, below: a.y > b.y }[m[2]!];
    assert.ok(ok, `relation "${m[0]}": ${where}`);
    checked++;
  }
  for (const m of t.matchAll(new RegExp(`\\bthe (${OBJ}) is larger than the (${OBJ})\\b`, 'g'))) {
    assert.ok(resolve(m[1]!).r > resolve(m[2]!).r, where);
    checked++;
  }
  // sizes: the task's own ranges (a single object r in S*[0.18, 0.28], each of two in S*[0.10, 0.16]), halves
  for (const m of t.matchAll(new RegExp(`\\b(small|large) ((?:${C}) (?:${SH}))\\b`, 'g'))) {
    const o = resolve(m[2]!);
    const [lo, hi] = objs.length === 1 ? [0.18, 0.28] : [0.1, 0.16];
    const frac = (o.r / S - lo) / (hi - lo);
    assert.ok(m[1] === 'small' ? frac < 0.5 : frac > 0.5, `size "${m[0]}" (r ${o.r}): ${where}`);
    checked++;
  }
  // positions: halves for the side named, the middle third for "centre"
  const POS = 'in the (?:top|bottom) (?:left|right) corner|at the (?:top|bottom)|on the (?:left|right)|in the centre';
  for (const m of t.matchAll(new RegExp(`\\b(?:an?|one) (?:(?:small|large) )?((?:${C}) (?:${SH})) (${POS})\\b`, 'g'))) {
    const o = resolve(m[1]!);
    const p = m[2]!;
    if (p.includes('left')) assert.ok(o.x < S / 2, `${p}: ${where}`);
    if (p.includes('right')) assert.ok(o.x > S / 2, `${p}: ${where}`);
    if (p.includes('top')) assert.ok(o.y < S / 2, `${p}: ${where}`);
    if (p.includes('bottom')) assert.ok(o.y > S / 2, `${p}: ${where}`);
    if (p === 'in the centre') assert.ok(3 * o.x >= S && 3 * o.x <= 2 * S && 3 * o.y >= S && 3 * o.y <= 2 * S, `${p}: ${where}`);
    checked++;
  }
  if (/\bone shape\b/.test(t)) assert.equal(objs.length, 1, where);
  if (/\btwo shapes\b/.test(t)) assert.equal(objs.length, 2, where);
  assert.equal(im.label, objs[0]!.color);
  return checked;
}

const TASK = { n: 200, seed: 3, difficulty: 'hard', imageSize: 32 } as const;

test('the corpus is deterministic for its options and writes what its plan holds', async () => {
  const [a, b] = [tmp(), tmp()];
  const opts = { captions: 60, images: 12, imageSize: 32, seed: 3, exclude: TASK };
  const ra = await generatePretrainCorpus({ ...opts, out: a });
  const rb = await generatePretrainCorpus({ ...opts, out: b });
  assert.deepEqual(ra, rb);
  assert.deepEqual(tree(a), tree(b));
  assert.equal(ra.captions, 60);
  assert.equal(ra.images, 12);
  const plan = planPretrainCorpus(opts);
  assert.deepEqual(lines(join(a, 'captions.txt')), plan.captions);
  assert.deepEqual(lines(join(a, 'images.jsonl')).map((l) => JSON.parse(l)), plan.images.map((r) => ({ image: r.image, text: r.text, label: r.label })));
  assert.deepEqual(readdirSync(join(a, 'images')).sort(), plan.images.map((r) => r.image.slice('images/'.length)));
  assert.equal(plan.images[0]!.image, 'images/00000.jpg');
  const info = JSON.parse(readFileSync(join(a, 'corpus.json'), 'utf8'));
  assert.deepEqual(info.counts, { captions: 60, images: 12 });
  assert.deepEqual(info.dropped, { captions: ra.droppedCaptions, images: ra.droppedImages });
  assert.deepEqual(info.options, { captions: 60, images: 12, imageSize: 32, seed: 3, exclude: TASK });
  // another seed, another corpus; the caption stream does not depend on how many images are drawn
  assert.notDeepEqual(planPretrainCorpus({ ...opts, seed: 4 }).captions, plan.captions);
  assert.deepEqual(planPretrainCorpus({ ...opts, images: 3 }).captions, plan.captions);
  rmSync(a, { recursive: true });
  rmSync(b, { recursive: true });
});

for (const task of [
  { n: 2000, seed: 1, difficulty: 'easy' }, { n: 2000, seed: 1, difficulty: 'medium' }, { n: 2000, seed: 1, difficulty: 'hard' },
  { n: 2000, seed: 1, difficulty: 'medium', task: 'imbalanced' },
] as Omit<SynthOptions, 'out'>[]) {
  test(`no caption equals a caption of the task (${task.task ?? 'match'}, ${task.difficulty})`, () => {
    const parts = synthesizeRecords(task);
    const taskCaptions = new Set([...parts.train, ...parts.val, ...parts.test].map((r) => r.text));
    const plan = planPretrainCorpus({ captions: 600, images: 0, seed: 1, exclude: task });
    assert.equal(plan.captions.length, 600);
    for (const l of plan.captions) assert.ok(!taskCaptions.has(l), l);
    if (task.task !== 'imbalanced') {
      // the short caption forms collide with the task's and are counted
      assert.ok(plan.droppedCaptions > 0, `dropped ${plan.droppedCaptions}`);
      // without the task excluded they would have been kept
      const free = planPretrainCorpus({ captions: 600, images: 0, seed: 1 });
      assert.equal(free.droppedCaptions, 0);
      assert.ok(free.captions.some((l) => taskCaptions.has(l)));
    }
  });
}

test('no image equals an image of the task, even at the same seed on a small canvas where collisions happen', () => {
  const task = { n: 20000, seed: 1, difficulty: 'easy', imageSize: 16 } as const;
  const scenes = synthesizeScenes(task);
  const taskSigs = new Set(scenes.samples.map((s) => sceneSignature(s.objs, 16, s.bg)));
  const plan = planPretrainCorpus({ captions: 0, images: 400, imageSize: 16, seed: 1, exclude: task });
  assert.equal(plan.images.length, 400);
  for (const im of plan.images) assert.ok(!taskSigs.has(sceneSignature(im.objects, 16, im.background)), im.image);
  assert.ok(plan.droppedImages > 0, `dropped ${plan.droppedImages}`);
  const free = planPretrainCorpus({ captions: 0, images: 400, imageSize: 16, seed: 1 });
  assert.equal(free.droppedImages, 0);
  assert.ok(free.images.some((im) => taskSigs.has(sceneSignature(im.objects, 16, im.background))), 'some candidates do collide');
  // the same picture at another resolution, or its two objects listed the other way round, has the same signature
  const o = [{ color: 'red', shape: 'circle', x: 8, y: 4, r: 2 }, { color: 'blue', shape: 'square', x: 3, y: 12, r: 2 }] as const;
  const twice = o.map((x) => ({ ...x, x: 2 * x.x, y: 2 * x.y, r: 2 * x.r }));
  assert.equal(sceneSignature([...o], 16, 'rgb(230,230,230)'), sceneSignature([twice[1]!, twice[0]!], 32, 'rgb(230,230,230)'));
  assert.notEqual(sceneSignature([...o], 16, 'rgb(230,230,230)'), sceneSignature([...o], 16, 'rgb(231,231,231)'));
});

test('every image text is a true description of the image, and the label is its first object\'s colour', () => {
  for (const S of [64, 32]) {
    const plan = planPretrainCorpus({ captions: 0, images: 300, imageSize: S, seed: 5, exclude: { n: 500, seed: 5, difficulty: 'hard', imageSize: S } });
    let clauses = 0;
    for (const im of plan.images) {
      assert.ok(im.objects.length === 1 || im.objects.length === 2);
      assert.ok(/ \. .* \.$/.test(im.text), `two clauses: ${im.text}`);
      clauses += checkTrue(im, S);
    }
    // every description had something beyond the names checked
    assert.ok(clauses >= plan.images.length, `${clauses} clauses`);
  }
});

test('captions use the task\'s vocabulary, lowercase, and restate what they say', () => {
  const { captions } = planPretrainCorpus({ captions: 400, images: 0, seed: 2 });
  const words = new Set(captions.join(' ').split(' '));
  for (const w of [...Object.keys(COLORS), ...SHAPES, 'small', 'large', 'one', 'two', 'shapes', 'top', 'bottom', 'left', 'right', 'centre', 'above', 'below']) {
    assert.ok(words.has(w), w);
  }
  const text = captions.join('\n');
  for (const r of RELATIONS) assert.ok(text.includes(` ${r} `), r);
  for (const l of captions) assert.equal(l, l.toLowerCase());
  const multi = captions.filter((l) => l.includes(' . '));
  assert.ok(multi.length > 0.7 * captions.length, `${multi.length} multi-clause lines`);
  // most lines name a colour or shape twice: a masked attribute can be read back from the rest of the line
  const redundant = captions.filter((l) => {
    const ws = l.split(' ').filter((w) => w in COLORS || (SHAPES as readonly string[]).includes(w));
    return new Set(ws).size < ws.length;
  });
  assert.ok(redundant.length > 0.7 * captions.length, `${redundant.length} redundant lines`);
});

for (const task of [{ n: 60, seed: 7, difficulty: 'hard', imageSize: 16 }, { n: 50, seed: 2, difficulty: 'easy', task: 'imbalanced', imageSize: 16, split: [0.6, 0.2] }] as Omit<SynthOptions, 'out'>[]) {
  test(`probe sets hold the task's matching val and test samples (${task.task ?? 'match'}, ${task.difficulty})`, async () => {
    const dir = tmp();
    const parts = await generateSynthetic({ ...task, out: dir });
    const { files, counts } = writeProbeSets(dir, task);
    assert.deepEqual(files, [join(dir, 'probe-color.jsonl'), join(dir, 'probe-shape.jsonl'), join(dir, 'probe-binding.jsonl')]);
    const matching = [...lines(join(dir, 'val.jsonl')), ...lines(join(dir, 'test.jsonl'))].map((l) => JSON.parse(l)).filter((r) => r.label === 1);
    assert.ok(matching.length > 0);
    assert.equal(counts.val, parts.val.filter((r) => r.label === 1).length);
    assert.equal(counts.test, parts.test.filter((r) => r.label === 1).length);
    const trainImages = new Set(parts.train.map((r) => r.image));
    for (const [attr, file] of [['color', files[0]!], ['shape', files[1]!]] as const) {
      const recs = lines(file).map((l) => JSON.parse(l));
      assert.equal(counts[`probe-${attr}.jsonl`], recs.length);
      assert.deepEqual(recs.map((r) => [r.image, r.text]), matching.map((r) => [r.image, r.text]));
      for (const r of recs) {
        assert.ok(existsSync(join(dir, r.image)), r.image);
        assert.ok(!trainImages.has(r.image));
        const first = new RegExp(`\\b(${C}) (${SH})\\b`).exec(r.text)!;
        assert.equal(r.label, attr === 'color' ? first[1] : first[2], r.text);
        assert.ok(attr === 'color' ? r.label in COLORS : (SHAPES as readonly string[]).includes(r.label));
      }
    }
    // binding: a circle and another shape in other colours, in either order; the label is the circle's colour
    const binding = lines(files[2]!).map((l) => JSON.parse(l));
    assert.equal(binding.length, matching.length);
    assert.equal(counts['probe-binding.jsonl'], binding.length);
    const orders = new Set<boolean>();
    for (const r of binding) {
      const m = new RegExp(`^an? (${C}) (${SH}) and an? (${C}) (${SH})$`).exec(r.text)!;
      assert.ok(m, r.text);
      const circleFirst = m[2] === 'circle';
      orders.add(circleFirst);
      assert.equal(r.label, circleFirst ? m[1] : m[3], r.text);
      assert.notEqual(m[1], m[3], 'two colours: a bag of words cannot tell which is the circle\'s');
      assert.equal([m[2], m[4]].filter((x) => x === 'circle').length, 1);
      assert.ok(existsSync(join(dir, r.image)));
    }
    if (binding.length >= 8) assert.equal(orders.size, 2, 'the circle comes first and second');
    // options that are not the folder's data set are refused, naming the task
    assert.throws(() => writeProbeSets(dir, { ...task, seed: task.seed! + 1 }), /task/);
    rmSync(dir, { recursive: true });
  });
}

test('bad options are named', async () => {
  assert.throws(() => planPretrainCorpus({ captions: -1 }), /for captions/);
  assert.throws(() => planPretrainCorpus({ images: 1.5 }), /for images/);
  assert.throws(() => planPretrainCorpus({ imageSize: 8 }), /for imageSize/);
  assert.throws(() => planPretrainCorpus({ seed: 'x' as never }), /for seed/);
  assert.throws(() => planPretrainCorpus({ exclude: 'x' as never }), /for exclude/);
  assert.throws(() => planPretrainCorpus({ exclude: { n: 3 } }), /for exclude\.n /);
  assert.throws(() => planPretrainCorpus({ exclude: { difficulty: 'x' as never } }), /for exclude\.difficulty /);
  await assert.rejects(generatePretrainCorpus({ out: '' }), /for out/);
  assert.throws(() => writeProbeSets('', {}), /for taskDir/);
  assert.throws(() => writeProbeSets(tmpdir(), null as never), /for task/);
});
