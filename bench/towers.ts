// Step time of each encoder architecture alone (docs/models.md): forward, a loss over the last hidden state,
// backward and AdamW, at its tiny and base presets (random init). Text towers over B x T tokens, image towers over
// B images at the preset's image size.
import { AdamW, createTower, manualSeed, randn, tensor, tidy } from '../src/index.js';
import { presetConfig } from '../src/models/encoder-configs.js';
import type { ImageTower, TextTower, Tower } from '../src/models/towers.js';
import { median } from './stats.js';

export interface TowerStep {
  preset: string;
  batch: number;
  /** text tokens per sample, or the image size */
  length: number;
  params_m: number;
  median_s: number;
  samples_per_s: number;
}

export function towerStep(side: 'text' | 'image', preset: string, B: number, warmup: number, steps: number, T = 32): TowerStep {
  manualSeed(0);
  const cfg = presetConfig(side, preset)!;
  const tower: Tower = side === 'text' ? createTower('text', cfg) : createTower('image', cfg);
  tower.train();
  const opt = new AdamW(tower.parameters(), { lr: 1e-4 });
  const S = side === 'image' ? (cfg.image_size as number) ?? 224 : T;
  const V = (cfg.vocab_size as number | undefined) ?? 30522;
  const inputs = side === 'text'
    ? [tensor(Array.from({ length: B * T }, (_, i) => (i * 7919) % V), { shape: [B, T], dtype: 'int64' }), tensor(new Array(B * T).fill(1), { shape: [B, T], dtype: 'int64' })]
    : [randn([B, 3, S, S])];
  const times: number[] = [];
  for (let i = 0; i < warmup + steps; i++) {
    const t0 = performance.now();
    tidy(() => {
      const out = side === 'text' ? (tower as TextTower).forward(inputs[0]!, inputs[1]!, null) : (tower as ImageTower).forward(inputs[0]!);
      out.lastHiddenState.square().mean().backward();
      opt.step();
      opt.zeroGrad();
    });
    if (i >= warmup) times.push((performance.now() - t0) / 1000);
  }
  const params = tower.parameters().reduce((n, p) => n + p.numel, 0);
  tower.dispose();
  opt.dispose();
  for (const t of inputs) t.dispose();
  const med = median(times);
  return { preset, batch: B, length: S, params_m: params / 1e6, median_s: med, samples_per_s: B / med };
}
