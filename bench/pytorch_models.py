"""A faithful PyTorch eager implementation of mmtrain's fusion classifier for side-by-side benchmarks: BERT and ViT
as Hugging Face's modeling_bert.py / modeling_vit.py compute them (eager attention, (B, nh, T, hs) layout), the
cross-attention fusion with torch.nn.MultiheadAttention, and the MLP head. Module paths are Hugging Face's and
mmtrain's checkpoint keys, so a model.safetensors written by mmtrain loads with load_state_dict."""
import math
import re

import torch
import torch.nn as nn
import torch.nn.functional as F

PRESETS = {
    "tiny": dict(hidden_size=128, num_hidden_layers=2, num_attention_heads=2, intermediate_size=512),
    "mini": dict(hidden_size=256, num_hidden_layers=4, num_attention_heads=4, intermediate_size=1024),
    "small": dict(hidden_size=512, num_hidden_layers=4, num_attention_heads=8, intermediate_size=2048),
    "base": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072),
}
BERT_DEFAULTS = dict(vocab_size=30522, max_position_embeddings=512, type_vocab_size=2, hidden_dropout_prob=0.1,
                     attention_probs_dropout_prob=0.1, layer_norm_eps=1e-12, pad_token_id=0)
VIT_DEFAULTS = dict(image_size=224, patch_size=16, num_channels=3, hidden_dropout_prob=0.0,
                    attention_probs_dropout_prob=0.0, layer_norm_eps=1e-12)


def split_heads(x, nh):
    B, T, C = x.shape
    return x.view(B, T, nh, C // nh).permute(0, 2, 1, 3)  # (B, T, C) -> (B, nh, T, hs)


class SelfAttention(nn.Module):
    def __init__(self, C, nh, p):
        super().__init__()
        self.nh, self.hs = nh, C // nh
        self.query, self.key, self.value = nn.Linear(C, C), nn.Linear(C, C), nn.Linear(C, C)
        self.dropout = nn.Dropout(p)

    def forward(self, x, mask=None):
        q, k, v = (split_heads(f(x), self.nh) for f in (self.query, self.key, self.value))
        s = q @ k.transpose(-1, -2) / math.sqrt(self.hs)
        if mask is not None:
            s = s + mask
        p = self.dropout(torch.softmax(s, -1))
        return (p @ v).permute(0, 2, 1, 3).reshape(x.shape)  # (B, nh, T, hs) -> (B, T, C)


class Dense(nn.Module):
    """A Linear under `.dense`, optionally followed by dropout + residual + LayerNorm (HF's *Output blocks)."""

    def __init__(self, i, o, p=0.0, eps=None):
        super().__init__()
        self.dense = nn.Linear(i, o)
        self.dropout = nn.Dropout(p)
        if eps is not None:
            self.LayerNorm = nn.LayerNorm(o, eps=eps)

    def forward(self, x, residual=None):
        y = self.dropout(self.dense(x))
        return y if residual is None else self.LayerNorm(y + residual)


class BertAttention(nn.Module):
    def __init__(self, c):
        super().__init__()
        C = c["hidden_size"]
        self.self = SelfAttention(C, c["num_attention_heads"], c["attention_probs_dropout_prob"])
        self.output = Dense(C, C, c["hidden_dropout_prob"], c["layer_norm_eps"])


class BertLayer(nn.Module):
    def __init__(self, c):
        super().__init__()
        C, I = c["hidden_size"], c["intermediate_size"]
        self.attention = BertAttention(c)
        self.intermediate = Dense(C, I)
        self.output = Dense(I, C, c["hidden_dropout_prob"], c["layer_norm_eps"])

    def forward(self, x, mask):
        a = self.attention.output(self.attention.self(x, mask), x)
        return self.output(F.gelu(self.intermediate(a)), a)


class BertEmbeddings(nn.Module):
    def __init__(self, c):
        super().__init__()
        C = c["hidden_size"]
        self.word_embeddings = nn.Embedding(c["vocab_size"], C, padding_idx=c["pad_token_id"])
        self.position_embeddings = nn.Embedding(c["max_position_embeddings"], C)
        self.token_type_embeddings = nn.Embedding(c["type_vocab_size"], C)
        self.LayerNorm = nn.LayerNorm(C, eps=c["layer_norm_eps"])
        self.dropout = nn.Dropout(c["hidden_dropout_prob"])

    def forward(self, ids):
        T = ids.shape[1]
        h = self.word_embeddings(ids) + self.position_embeddings(torch.arange(T).unsqueeze(0)) + self.token_type_embeddings(torch.zeros_like(ids))
        return self.dropout(self.LayerNorm(h))


class Encoder(nn.Module):
    def __init__(self, layers):
        super().__init__()
        self.layer = nn.ModuleList(layers)


class Bert(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.embeddings = BertEmbeddings(c)
        self.encoder = Encoder([BertLayer(c) for _ in range(c["num_hidden_layers"])])
        self.pooler = Dense(c["hidden_size"], c["hidden_size"])

    def forward(self, ids, mask):
        h = self.embeddings(ids)
        ext = (1.0 - mask[:, None, None, :].to(h.dtype)) * torch.finfo(h.dtype).min  # (B, 1, 1, T)
        for l in self.encoder.layer:
            h = l(h, ext)
        return h


class ViTAttention(nn.Module):
    def __init__(self, c):
        super().__init__()
        C = c["hidden_size"]
        self.attention = SelfAttention(C, c["num_attention_heads"], c["attention_probs_dropout_prob"])
        self.output = Dense(C, C, c["hidden_dropout_prob"])


class ViTLayer(nn.Module):
    def __init__(self, c):
        super().__init__()
        C, I, eps = c["hidden_size"], c["intermediate_size"], c["layer_norm_eps"]
        self.layernorm_before = nn.LayerNorm(C, eps=eps)
        self.attention = ViTAttention(c)
        self.layernorm_after = nn.LayerNorm(C, eps=eps)
        self.intermediate = Dense(C, I)
        self.output = Dense(I, C, c["hidden_dropout_prob"])

    def forward(self, x):
        h = self.attention.output(self.attention.attention(self.layernorm_before(x))) + x
        return self.output(F.gelu(self.intermediate(self.layernorm_after(h)))) + h


class PatchEmbeddings(nn.Module):
    def __init__(self, c):
        super().__init__()
        P = c["patch_size"]
        self.projection = nn.Conv2d(c["num_channels"], c["hidden_size"], P, stride=P)


class ViTEmbeddings(nn.Module):
    def __init__(self, c):
        super().__init__()
        C, n = c["hidden_size"], (c["image_size"] // c["patch_size"]) ** 2
        self.cls_token = nn.Parameter(torch.zeros(1, 1, C))
        self.position_embeddings = nn.Parameter(torch.zeros(1, n + 1, C))
        self.patch_embeddings = PatchEmbeddings(c)
        self.dropout = nn.Dropout(c["hidden_dropout_prob"])

    def forward(self, px):
        x = self.patch_embeddings.projection(px).flatten(2).transpose(1, 2)  # (B, C, h, w) -> (B, T, C)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], 1) + self.position_embeddings
        return self.dropout(x)


class ViT(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.embeddings = ViTEmbeddings(c)
        self.encoder = Encoder([ViTLayer(c) for _ in range(c["num_hidden_layers"])])
        self.layernorm = nn.LayerNorm(c["hidden_size"], eps=c["layer_norm_eps"])
        self.pooler = Dense(c["hidden_size"], c["hidden_size"])

    def forward(self, px):
        x = self.embeddings(px)
        for l in self.encoder.layer:
            x = l(x)
        return self.layernorm(x)


class CrossAttentionFusion(nn.Module):
    def __init__(self, C, nh, p=0.0):
        super().__init__()
        self.text_to_image = nn.MultiheadAttention(C, nh, dropout=p, batch_first=True)
        self.image_to_text = nn.MultiheadAttention(C, nh, dropout=p, batch_first=True)
        self.text_norm, self.image_norm = nn.LayerNorm(C), nn.LayerNorm(C)


class Fusion(nn.Module):
    """Cross-attention fusion (mmtrain's default variant), masked-mean pooling, MLP head. `preset` names both encoders'
    shape; `text` / `image` override their config.json fields (as mmtrain's model.text.config does)."""

    def __init__(self, preset="tiny", text=None, image=None, fusion_num_heads=8, head_hidden_size=512, head_dropout=0.1,
                 fusion_attention_dropout=0.0, num_labels=2):
        super().__init__()
        self.text_config = {**BERT_DEFAULTS, **PRESETS[preset], **(text or {})}
        self.image_config = {**VIT_DEFAULTS, **PRESETS[preset], **(image or {})}
        C = self.text_config["hidden_size"]
        assert self.image_config["hidden_size"] == C, "this reference has no image projection"
        self.text_encoder = Bert(self.text_config)
        self.image_encoder = ViT(self.image_config)
        self.fusion = CrossAttentionFusion(C, fusion_num_heads, fusion_attention_dropout)
        self.classifier = nn.Sequential(nn.Linear(2 * C, head_hidden_size), nn.ReLU(), nn.Dropout(head_dropout),
                                        nn.Linear(head_hidden_size, num_labels))

    def forward(self, ids, mask, px):
        th = self.text_encoder(ids, mask)
        ih = self.image_encoder(px)
        f = self.fusion
        t = f.text_norm(th + f.text_to_image(th, ih, ih, need_weights=False)[0])
        i = f.image_norm(ih + f.image_to_text(ih, th, th, key_padding_mask=(mask == 0), need_weights=False)[0])
        m = mask.to(t.dtype).unsqueeze(-1)  # (B, T, 1)
        tv = (t * m).sum(1) / m.sum(1).clamp(min=1e-9)
        return self.classifier(torch.cat([tv, i.mean(1)], 1))


# mmtrain's rule (src/train/trainer.ts parameterGroups): no weight decay on biases, norms, cls token and ViT's
# position embeddings, nor on any parameter with fewer than 2 dimensions.
NO_DECAY = re.compile(r"(^|\.)(bias|LayerNorm\.weight|layernorm_before\.weight|layernorm_after\.weight|layernorm\.weight|norm\.weight|text_norm\.weight|image_norm\.weight|cls_token|position_embeddings)$")


def parameter_groups(model, weight_decay):
    decay, no_decay = [], []
    for n, p in model.named_parameters():
        (no_decay if NO_DECAY.search(n) or p.dim() < 2 else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
