export { readManifest, formatProblems, type Manifest, type Sample, type Problem, type ManifestOptions } from './manifest.js';
export { imageConfig, loadImage, decodeImage, IMAGENET_MEAN, IMAGENET_STD, type ImageConfig, type AugmentConfig, type DecodedImage } from './image.js';
export { ImageConfigSchema } from './image-config.js';
export { TextTokenizer, type EncodedText } from './tokenizer.js';
export { DataLoader, type Cursor, type LoaderOptions } from './loader.js';
export { collate, imagesToTensor, disposeBatch, type Batch, type CollateItem, type CollateOptions } from './collate.js';
export { ImageCache } from './cache.js';
export { generateSynthetic, synthesizeRecords, COLORS, SHAPES, RELATIONS, type SynthOptions, type SynthRecord, type Task, type Difficulty } from './synth.js';
