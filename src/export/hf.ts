// Export of a trained checkpoint as Hugging Face folders, for a Python colleague or the hub:
//   DIR/text_encoder/   a BertModel folder: config.json (model_type bert, architectures), model.safetensors under
//                       BertModel's key names, the tokenizer (tokenizer.json or vocab.txt, tokenizer_config.json)
//   DIR/image_encoder/  a ViTModel folder with preprocessor_config.json (size, resample, rescale, mean, std)
//   DIR/fusion/         the fusion layers and the head (model.safetensors), the whole model's config.json, and
//                       mmtrain.json (labels and preprocessing), so that mmtrain loads DIR as a model
// Module paths equal checkpoint keys, so each encoder's state dict is its Hugging Face state dict as it is.
import { copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeFolder, writeFolderAtomic, writeJsonAtomic } from '../files.js';
import { encoderConfigKind } from '../models/encoder-configs.js';
import { loadTower } from '../models/encoders.js';
import { FusionClassifier, HF_EXPORT_ENCODERS } from '../models/fusion.js';
import { noGrad } from '../tensor/modes.js';
import { tidy } from '../tensor/scope.js';
import { tensor } from '../tensor/tensor.js';
import { saveSafetensors } from '../tensor/safetensors.js';
import type { Tensor } from '../tensor/tensor.js';
import { readInferenceInfo, type InferenceInfo } from '../train/checkpoint.js';

/** PIL's resampling filter codes, as image processors store them. */
const PIL_FILTERS = { bilinear: 2, bicubic: 3 } as const;

/** Hugging Face's image processor settings for mmtrain's preprocessing of `info.image`. */
export function preprocessorConfig(image: InferenceInfo['image']): Record<string, unknown> {
  const common = {
    do_resize: true, resample: PIL_FILTERS[image.resample ?? 'bilinear'], do_rescale: true, rescale_factor: 1 / 255, do_normalize: true,
    image_mean: image.mean, image_std: image.std, do_convert_rgb: true,
  };
  const R = image.resizeSize ?? image.size;
  const crop = R !== image.size ? { do_center_crop: true, crop_size: { height: image.size, width: image.size } } : {};
  if (image.resize === 'exact') return { image_processor_type: 'ViTImageProcessor', ...common, size: { height: R, width: R }, ...crop };
  // the shorter side to R, then the centre `size` x `size` crop: torchvision's Resize + CenterCrop
  return { image_processor_type: 'BitImageProcessor', ...common, size: { shortest_edge: R }, do_center_crop: true, crop_size: { height: image.size, width: image.size } };
}

function prefixed(sd: Map<string, Tensor>, prefix: string): Map<string, Tensor> {
  return new Map([...sd].filter(([k]) => k.startsWith(prefix)).map(([k, t]) => [k.slice(prefix.length), t]));
}

export interface HfExport {
  dir: string;
  textEncoder: string;
  imageEncoder: string;
  fusion: string;
  /** the encoders' Hugging Face classes (BertModel, CLIPVisionModel, ...) */
  classes: { text: string; image: string };
}

/**
 * Writes the checkpoint's model as Hugging Face folders under `out`, which must not exist or be empty. The folders
 * are written beside it and renamed into place, so a failed export leaves nothing half-written.
 */
export function exportHuggingFace(checkpoint: string, out: string): HfExport {
  const info = readInferenceInfo(checkpoint);
  const model = FusionClassifier.fromPretrained(checkpoint);
  const tk = encoderConfigKind('text', model.config.text_config);
  const ik = encoderConfigKind('image', model.config.image_config);
  try {
    writeFolderAtomic(out, (tmp) => {
      const sd = model.stateDict();
      const text = join(tmp, 'text_encoder');
      const image = join(tmp, 'image_encoder');
      const fusion = join(tmp, 'fusion');
      for (const d of [text, image, fusion]) makeFolder(d);
      const meta = { format: 'pt' }; // as transformers writes it: the tensors are PyTorch's layout

      // each encoder's folder holds its subtree (HF_EXPORT_ENCODERS, as FusionClassifier.fromPretrained reads them);
      // fusion/ the rest
      for (const e of HF_EXPORT_ENCODERS) saveSafetensors(join(tmp, e, 'model.safetensors'), prefixed(sd, `${e}.`), meta);
      const rest = new Map([...sd].filter(([k]) => !HF_EXPORT_ENCODERS.some((e) => k.startsWith(`${e}.`))));
      saveSafetensors(join(fusion, 'model.safetensors'), rest, meta);

      writeJsonAtomic(join(text, 'config.json'), { architectures: [tk.className], ...model.text_encoder.config, model_type: tk.type });
      copyFileSync(join(checkpoint, info.tokenizer), join(text, info.tokenizer));
      writeJsonAtomic(join(text, 'tokenizer_config.json'), {
        tokenizer_class: info.tokenizer === 'vocab.txt' ? 'BertTokenizer' : 'BertTokenizerFast', do_lower_case: info.doLowerCase, model_max_length: info.maxLength,
      });

      writeJsonAtomic(join(image, 'config.json'), { architectures: [ik.className], ...model.image_encoder.config, model_type: ik.type });
      writeJsonAtomic(join(image, 'preprocessor_config.json'), preprocessorConfig(info.image));

      writeJsonAtomic(join(fusion, 'config.json'), model.config);
      writeJsonAtomic(join(fusion, 'mmtrain.json'), { ...info, tokenizer: `../text_encoder/${info.tokenizer}` });
    });
  } finally {
    model.dispose();
  }
  return { dir: out, textEncoder: join(out, 'text_encoder'), imageEncoder: join(out, 'image_encoder'), fusion: join(out, 'fusion'), classes: { text: tk.className, image: ik.className } };
}

/**
 * Inputs for the export's encoders and mmtrain's outputs for them, for scripts/hf-check.py to compare with
 * Hugging Face's math: two texts of different lengths (padded), two images of the encoder's size.
 */
export function writeHfCheckFile(exportDir: string, file: string): void {
  const bert = loadTower('text', join(exportDir, 'text_encoder'), { strict: true }).model.eval();
  const vit = loadTower('image', join(exportDir, 'image_encoder'), { strict: true }).model.eval();
  try {
    noGrad(() => tidy(() => {
      const V = bert.config.vocab_size;
      const typeVocab = 'type_vocab_size' in bert.config ? bert.config.type_vocab_size : 1;
      const ids = tensor([[2, 7 % V, 9 % V, 3, 0, 0], [2, 11 % V, 13 % V, 17 % V, 19 % V, 3]], { dtype: 'int64' });
      const mask = tensor([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]], { dtype: 'int64' });
      const types = tensor([[0, 0, 0, 0, 0, 0], [0, 0, 0, 1, 1, 1]], { dtype: 'int64' }).remainder(typeVocab);
      const S = vit.config.image_size;
      const px = tensor(Array.from({ length: 2 * 3 * S * S }, (_, i) => Math.sin(i * 0.37)), { shape: [2, 3, S, S] });
      const t = bert.forward(ids, mask, types);
      const im = vit.forward(px);
      const out: Record<string, Tensor> = {
        input_ids: ids, attention_mask: mask, token_type_ids: types, pixel_values: px,
        'text.last_hidden_state': t.lastHiddenState, 'image.last_hidden_state': im.lastHiddenState,
      };
      if (t.poolerOutput) out['text.pooler_output'] = t.poolerOutput;
      if (im.poolerOutput) out['image.pooler_output'] = im.poolerOutput;
      saveSafetensors(file, out);
    }));
  } finally {
    bert.dispose();
    vit.dispose();
  }
}
