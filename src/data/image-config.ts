// Image preprocessing settings (the run config's data.image, a checkpoint's inference info): one zod schema with
// the defaults, checked as every config is (src/validation.ts). Loads no LibTorch and no sharp.
import { z } from 'zod';
import { parseConfig } from '../validation.js';

export const IMAGENET_MEAN: [number, number, number] = [0.485, 0.456, 0.406];
export const IMAGENET_STD: [number, number, number] = [0.229, 0.224, 0.225];

const prob = z.number().min(0).max(1);
const pair = z.tuple([z.number(), z.number()]);

export const AugmentSchema = z.strictObject({
  /** RandomResizedCrop: scale range of the area and aspect-ratio range; null = off */
  randomResizedCrop: z.strictObject({ scale: pair, ratio: pair }).nullable().default(null),
  /** probability of a horizontal flip; 0 = off (flips change the meaning of "left"/"right" captions) */
  horizontalFlip: prob.default(0),
  /** ColorJitter strengths (0 = off) */
  colorJitter: z.strictObject({ brightness: z.number().min(0), contrast: z.number().min(0), saturation: z.number().min(0) }).nullable().default(null),
});

/** The fields (the run config's data.image extends them); ImageConfigSchema adds the cross-field check. */
export const ImageConfigFields = z.strictObject({
  /** output side (square) in pixels */
  size: z.number().int().positive().max(8192).default(224),
  /**
   * "shorter-side": resize the shorter side to resizeSize, then the centre size x size crop (torchvision
   * Resize(resizeSize) + CenterCrop(size)); "exact": resize to resizeSize x resizeSize ignoring aspect (the original
   * design's Resize((224, 224))), then the centre crop when resizeSize is larger (DeiT's 256 then 224)
   */
  resize: z.enum(['shorter-side', 'exact']).default('shorter-side'),
  /** the resize's target before the centre crop (default: size, no margin) */
  resizeSize: z.number().int().positive().max(8192).optional(),
  /** Pillow's resampling filter: bilinear (torchvision's default), or bicubic (CLIP's, SigLIP's and DeiT's processors) */
  resample: z.enum(['bilinear', 'bicubic']).default('bilinear'),
  mean: z.tuple([z.number(), z.number(), z.number()]).default(IMAGENET_MEAN),
  std: z.tuple([z.number().positive(), z.number().positive(), z.number().positive()]).default(IMAGENET_STD),
  /** refuse images with more pixels than this (decompression bombs) */
  maxPixels: z.number().int().positive().default(100_000_000),
  augment: AugmentSchema.prefault({}),
});

/** resizeSize below size would crop more than the image holds */
export const ImageConfigSchema = ImageConfigFields.superRefine((c, ctx) => {
  if (c.resizeSize !== undefined && Number.isInteger(c.size) && c.resizeSize < c.size) {
    ctx.addIssue({ code: 'custom', path: ['resizeSize'], input: c.resizeSize, message: `expected at least size (${c.size}), received ${c.resizeSize}: the centre crop takes size x size out of the resized image` });
  }
});

export type ImageConfig = z.output<typeof ImageConfigSchema>;
export type AugmentConfig = z.output<typeof AugmentSchema>;

/** Fills defaults and checks every field, naming the field, what it expected and received, and the fix. */
export function imageConfig(partial: z.input<typeof ImageConfigSchema> = {}, source = 'image config'): ImageConfig {
  return parseConfig(ImageConfigSchema, partial, source);
}
