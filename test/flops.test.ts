// The MFU numerator: model FLOPs counted from the config must equal a count made from the instantiated model's own
// weight shapes (every Linear applied to the tokens it sees, the patch convolution, attention products).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createFusionModel, featureCacheFlopBound, fusionForwardFlopParts, fusionForwardFlops, fusionTrainingFlops, nn } from '../src/index.js';

const TEXT = { hidden_size: 32, num_hidden_layers: 2, num_attention_heads: 4, intermediate_size: 64 };

for (const hidden of [32, 48]) {
  test(`fusion FLOPs from the config equal a count over the model's modules (image width ${hidden})`, () => {
    const { model } = createFusionModel({
      preset: 'tiny', text: { config: TEXT },
      image: { config: { ...TEXT, hidden_size: hidden, num_attention_heads: 4, image_size: 32, patch_size: 8 } },
      fusion_num_heads: 4, head_hidden_size: 16,
    });
    const Tt = 7;
    const N = 16 + 1; // (32 / 8)^2 patches + [CLS]
    const C = 32;
    let f = 0;
    for (const [name, m] of model.namedModules()) {
      if (!(m instanceof nn.Linear) || name.includes('pooler')) continue;
      const [o, i] = m.weight.shape as [number, number];
      const tokens = name.startsWith('text_encoder.') ? Tt : name.startsWith('image_encoder.') || name === 'image_projection' ? N : 1;
      if (name.startsWith('fusion.')) continue; // counted below from the attention modules
      f += 2 * tokens * o * i;
    }
    // patch embedding: one (C x 3*8*8) product per patch
    f += 2 * 16 * 3 * 8 * 8 * hidden;
    // self-attention products: per layer 2 * (2 T^2 C)
    f += 2 * (4 * Tt * Tt * C) + 2 * (4 * N * N * hidden);
    // cross-attention both ways: q and out projections over the queries, k and v over the memory, 2 products
    const mha = (Tq: number, Tk: number) => 2 * (2 * Tq * C * C + 2 * Tk * C * C) + 4 * Tq * Tk * C;
    f += mha(Tt, N) + mha(N, Tt);
    assert.equal(fusionForwardFlops(model.config, Tt), f);
    assert.equal(fusionTrainingFlops(model.config, 4, Tt), 3 * 4 * f);
    model.dispose();
  });
}

test('the FLOP split at the feature cache: encoders (patch embedding included) against projection, fusion and head', () => {
  const { model } = createFusionModel({
    preset: 'tiny', text: { config: TEXT },
    image: { config: { ...TEXT, hidden_size: 48, num_attention_heads: 4, image_size: 32, patch_size: 8 } },
    fusion_num_heads: 4, head_hidden_size: 16,
  });
  const Tt = 7;
  const N = 17;
  const C = 32;
  let fusionHead = 0;
  for (const [name, m] of model.namedModules()) {
    if (!(m instanceof nn.Linear) || name.startsWith('text_encoder.') || name.startsWith('image_encoder.') || name.startsWith('fusion.')) continue;
    const [o, i] = m.weight.shape as [number, number];
    fusionHead += 2 * (name === 'image_projection' ? N : 1) * o * i; // the projection maps every image token
  }
  const mha = (Tq: number, Tk: number) => 2 * (2 * Tq * C * C + 2 * Tk * C * C) + 4 * Tq * Tk * C;
  fusionHead += mha(Tt, N) + mha(N, Tt);
  const parts = fusionForwardFlopParts(model.config, Tt);
  assert.equal(parts.fusionHead, fusionHead);
  assert.equal(parts.encoders + parts.fusionHead, fusionForwardFlops(model.config, Tt));
  assert.equal(featureCacheFlopBound(model.config, Tt), (parts.encoders + 3 * fusionHead) / (3 * fusionHead));
  model.dispose();
});
