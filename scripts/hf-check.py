#!/usr/bin/python3
"""Checks an `mmtrain export --format hf` folder against Hugging Face's math, outside mmtrain.

  /usr/bin/python3 scripts/hf-check.py EXPORT_DIR CHECK_FILE

CHECK_FILE is a safetensors file of inputs and mmtrain's outputs for them, written by
`mmtrain export CHECKPOINT --out EXPORT_DIR --check-file CHECK_FILE`:
  input_ids, attention_mask, token_type_ids (B, T) int64; pixel_values (B, 3, S, S) float32;
  text.last_hidden_state, text.pooler_output, image.last_hidden_state, image.pooler_output: mmtrain's outputs.

Two references read the folders as they are (config.json + model.safetensors, no mmtrain code), for every tower
mmtrain exports (BERT, DistilBERT, RoBERTa, CLIP text, SigLIP text; ViT, DeiT, CLIP vision, SigLIP vision):
  1. the plain-PyTorch implementations of Hugging Face's modeling_*.py math that the test fixtures use
     (test/fixtures/gen_models.py, gen_towers.py), on Debian's python3-torch;
  2. where `transformers` is installed: AutoModel.from_pretrained on each folder (the class its model_type names).
Each output must agree with mmtrain's within 1e-5 (max absolute difference). Exit status 0 when all agree.
"""
import json
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "test", "fixtures"))
from gen_models import bert_forward, vit_forward  # noqa: E402
from gen_towers import (clip_text_forward, clip_vision_forward, deit_forward, distilbert_forward, roberta_forward,  # noqa: E402
                        siglip_text_forward, siglip_vision_forward)

# each tower's reference by model_type: (weights, config, inputs) -> (last hidden state, pooled or None)
TEXT = {
    "bert": lambda w, c, ids, mask, tt: bert_forward(w, c, ids, mask, tt),
    "distilbert": lambda w, c, ids, mask, tt: distilbert_forward(w, c, ids, mask),
    "roberta": lambda w, c, ids, mask, tt: roberta_forward(w, c, ids, mask),
    "clip_text_model": lambda w, c, ids, mask, tt: clip_text_forward(w, c, ids, mask),
    "siglip_text_model": lambda w, c, ids, mask, tt: siglip_text_forward(w, c, ids, mask),
}
IMAGE = {
    "vit": vit_forward,
    "deit": deit_forward,
    "clip_vision_model": clip_vision_forward,
    "siglip_vision_model": siglip_vision_forward,
}
from safetensors_io import read_safetensors  # noqa: E402

TOL = 1e-5


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    out_dir, check_file = sys.argv[1], sys.argv[2]
    x = read_safetensors(check_file)
    text_dir, image_dir = os.path.join(out_dir, "text_encoder"), os.path.join(out_dir, "image_encoder")
    tc = json.load(open(os.path.join(text_dir, "config.json")))
    ic = json.load(open(os.path.join(image_dir, "config.json")))
    tw = read_safetensors(os.path.join(text_dir, "model.safetensors"))
    iw = read_safetensors(os.path.join(image_dir, "model.safetensors"))
    ids, mask, tt, px = x["input_ids"], x["attention_mask"], x["token_type_ids"], x["pixel_values"]
    results = []

    def compare(name, ours, ref):
        d = (ours - ref).abs().max().item()
        results.append((name, d))
        print(f"{name}: max |mmtrain - reference| = {d:.3g}")

    tt_name, it_name = tc["model_type"], ic["model_type"]
    with torch.no_grad():
        h, pooled = TEXT[tt_name](tw, tc, ids, mask, tt)
        compare(f"reference {tt_name} last_hidden_state", x["text.last_hidden_state"], h)
        if pooled is not None:
            compare(f"reference {tt_name} pooler_output", x["text.pooler_output"], pooled)
        h, pooled = IMAGE[it_name](iw, ic, px)
        compare(f"reference {it_name} last_hidden_state", x["image.last_hidden_state"], h)
        compare(f"reference {it_name} pooler_output", x["image.pooler_output"], pooled)
        try:
            import transformers
        except ImportError:
            print("transformers is not installed here: the check against its own classes was not run")
        else:
            text = transformers.AutoModel.from_pretrained(text_dir).eval()
            extra = {"token_type_ids": tt} if tt_name in ("bert", "roberta") else {}
            o = text(input_ids=ids, attention_mask=mask, **extra)
            name = f"transformers {transformers.__version__} {type(text).__name__}"
            compare(f"{name} last_hidden_state", x["text.last_hidden_state"], o.last_hidden_state)
            if getattr(o, "pooler_output", None) is not None:
                compare(f"{name} pooler_output", x["text.pooler_output"], o.pooler_output)
            image = transformers.AutoModel.from_pretrained(image_dir).eval()
            o = image(pixel_values=px)
            compare(f"transformers {type(image).__name__} last_hidden_state", x["image.last_hidden_state"], o.last_hidden_state)
            compare(f"transformers {type(image).__name__} pooler_output", x["image.pooler_output"], o.pooler_output)
            proc = transformers.AutoImageProcessor.from_pretrained(image_dir)
            print(f"transformers reads preprocessor_config.json as {type(proc).__name__}")
    bad = [(n, d) for n, d in results if not d <= TOL]
    print("all within 1e-5" if not bad else f"{len(bad)} output(s) differ by more than {TOL}")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
