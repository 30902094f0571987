// The masking of the two pretraining objectives, on plain arrays (no LibTorch): BERT's masked language modelling
// (Hugging Face's DataCollatorForLanguageModeling, optionally over whole words as DataCollatorForWholeWordMask) and
// SimMIM/MAE's random patch mask. Randomness comes from a caller's uniform generator (mulberry32), so a seeded
// pipeline masks the same way every run.
import { describe, invalid, isInt } from '../errors.js';

export interface MlmMasking {
  /** share of tokens chosen for prediction (0.15) */
  probability: number;
  /** the [MASK] token id */
  maskId: number;
  /** random replacements are drawn from [0, vocabSize), never a special id */
  vocabSize: number;
  /** never chosen: [CLS], [SEP], [PAD], [UNK], [MASK] (the tokenizer's special ids) */
  specialIds: ReadonlySet<number>;
  /** choose whole words: a word's WordPiece continuations ("##x") are chosen with it */
  wholeWord: boolean;
  /** whether a token id continues the previous token's word */
  isContinuation(id: number): boolean;
}

/** A chosen token becomes [MASK] below this draw, a random token below REPLACE_RANDOM, else stays (80/10/10). */
const REPLACE_MASK = 0.8;
const REPLACE_RANDOM = 0.9;
/** HF's label for positions that are not predicted (CrossEntropyLoss's ignore_index) */
export const IGNORE_LABEL = -100;

/** Option objects already checked (checked once, on first use). */
const checked = new WeakSet<MlmMasking>();

function checkMasking(m: MlmMasking): void {
  if (checked.has(m)) return;
  if (m === null || typeof m !== 'object') invalid('masking options', 'an MlmMasking object', m);
  if (typeof m.probability !== 'number' || !(m.probability > 0 && m.probability < 1)) invalid('probability', 'a number in (0, 1)', m.probability);
  if (!isInt(m.vocabSize) || m.vocabSize < 1) invalid('vocabSize', 'a positive integer', m.vocabSize);
  if (!isInt(m.maskId) || m.maskId < 0 || m.maskId >= m.vocabSize) invalid('maskId', `an integer in [0, ${m.vocabSize}) (below vocabSize)`, m.maskId);
  if (!(m.specialIds instanceof Set)) invalid('specialIds', 'a Set of token ids', m.specialIds);
  if (typeof m.wholeWord !== 'boolean') invalid('wholeWord', 'a boolean', m.wholeWord);
  if (typeof m.isContinuation !== 'function') invalid('isContinuation', 'a function (id) => boolean', m.isContinuation);
  let specialInVocab = 0;
  for (const id of m.specialIds) {
    if (!isInt(id)) invalid('specialIds', 'integer token ids', `a Set holding ${describe(id)}`);
    if (id >= 0 && id < m.vocabSize) specialInVocab++;
  }
  if (specialInVocab >= m.vocabSize) invalid('specialIds', `fewer ids than vocabSize (${m.vocabSize}): random replacements need a non-special id`, `${specialInVocab} special ids in [0, ${m.vocabSize})`);
  checked.add(m);
}

/** A uniformly random non-special id in [0, vocabSize): rejection sampling, then the next non-special id if unlucky. */
function randomToken(m: MlmMasking, rnd: () => number): number {
  let id = 0;
  for (let attempt = 0; attempt < 64; attempt++) {
    id = Math.min(Math.floor(rnd() * m.vocabSize), m.vocabSize - 1);
    if (!m.specialIds.has(id)) return id;
  }
  // a vocabulary that is nearly all special ids: walk on from the last draw (checkMasking ensured one exists)
  while (m.specialIds.has(id)) id = (id + 1) % m.vocabSize;
  return id;
}

/** BERT's masking of one row (Hugging Face DataCollatorForLanguageModeling semantics): each non-special token (or whole word) is chosen with `probability`; a chosen token becomes [MASK] 80%, a random token 10%, stays 10%; labels hold the original id at chosen positions and -100 elsewhere. rnd: uniform in [0, 1). */
export function maskRow(ids: ArrayLike<number>, m: MlmMasking, rnd: () => number): { input: Int32Array; labels: Int32Array } {
  checkMasking(m);
  if (ids === null || typeof ids !== 'object' || typeof ids.length !== 'number') invalid('ids', 'an array of token ids', ids);
  if (typeof rnd !== 'function') invalid('rnd', 'a function returning uniform numbers in [0, 1)', rnd);
  const T = ids.length;
  const input = Int32Array.from(ids);
  const labels = new Int32Array(T).fill(IGNORE_LABEL);
  // Draw order (fixed, so a seeded rnd masks reproducibly): per word one choice draw; per chosen token one
  // 80/10/10 draw, and the replacement's draws when it is random.
  let t = 0;
  while (t < T) {
    if (m.specialIds.has(input[t]!)) {
      t++;
      continue;
    }
    // the word [t, end): the token and, with wholeWord, the continuations that follow it
    let end = t + 1;
    if (m.wholeWord) while (end < T && !m.specialIds.has(input[end]!) && m.isContinuation(input[end]!)) end++;
    if (rnd() < m.probability) {
      for (let i = t; i < end; i++) {
        labels[i] = input[i]!;
        const r = rnd();
        if (r < REPLACE_MASK) input[i] = m.maskId;
        else if (r < REPLACE_RANDOM) input[i] = randomToken(m, rnd);
      }
    }
    t = end;
  }
  return { input, labels };
}

/** SimMIM/MAE-style random patch mask: exactly Math.round(ratio * N) of N patches set to 1. */
export function maskPatches(N: number, ratio: number, rnd: () => number): Uint8Array {
  if (!isInt(N) || N < 1) invalid('N', 'a positive integer (the number of patches)', N);
  if (typeof ratio !== 'number' || !(ratio > 0 && ratio < 1)) invalid('ratio', 'a number in (0, 1)', ratio);
  if (typeof rnd !== 'function') invalid('rnd', 'a function returning uniform numbers in [0, 1)', rnd);
  const k = Math.round(ratio * N);
  // the first k entries of a partial Fisher-Yates shuffle of 0..N-1
  const order = Uint32Array.from({ length: N }, (_, i) => i);
  const mask = new Uint8Array(N);
  for (let i = 0; i < k; i++) {
    const j = i + Math.min(Math.floor(rnd() * (N - i)), N - i - 1);
    const pick = order[j]!;
    order[j] = order[i]!;
    order[i] = pick;
    mask[pick] = 1;
  }
  return mask;
}
