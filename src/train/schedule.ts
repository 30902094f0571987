// Learning-rate schedules, stepped once per optimizer step: linear warmup, then cosine / linear / constant decay to
// a minimum. `original` reproduces the original design's defect for comparison studies: a CosineAnnealingLR(T_max=10)
// created inside the batch loop multiplies the lr by (1 + cos(pi/10)) / 2 = 0.9755 after every batch.
import { invalid } from '../errors.js';

export type ScheduleType = 'cosine' | 'linear' | 'constant' | 'original';

export interface ScheduleConfig {
  type: ScheduleType;
  /** warmup steps (takes precedence over warmupRatio) */
  warmupSteps?: number;
  /** warmup as a fraction of the total steps */
  warmupRatio?: number;
  /** the lr reached at the end, as a fraction of the peak lr */
  minLrRatio?: number;
}

/** The lr multiplier (0..1) for optimizer step `step` (0-based) of `total`. */
export function lrFactor(cfg: ScheduleConfig, step: number, total: number): number {
  const warmup = warmupSteps(cfg, total);
  const min = cfg.minLrRatio ?? 0;
  if (cfg.type === 'original') return Math.pow((1 + Math.cos(Math.PI / 10)) / 2, step);
  if (step < warmup) return (step + 1) / warmup;
  const span = Math.max(1, total - warmup);
  const progress = Math.min(1, (step - warmup) / span);
  switch (cfg.type) {
    case 'constant': return 1;
    case 'linear': return min + (1 - min) * (1 - progress);
    case 'cosine': return min + (1 - min) * 0.5 * (1 + Math.cos(Math.PI * progress));
    default: return invalid('schedule.type', '"cosine", "linear", "constant" or "original"', cfg.type);
  }
}

export function warmupSteps(cfg: ScheduleConfig, total: number): number {
  if (cfg.type === 'original') return 0;
  if (cfg.warmupSteps !== undefined) return cfg.warmupSteps;
  return Math.round((cfg.warmupRatio ?? 0) * total);
}
