"""A faithful PyTorch eager implementation of mmtrain's fusion classifier for side-by-side benchmarks: BERT and ViT
as Hugging Face's modeling_bert.py / modeling_vit.py compute them (eager attention, (B, nh, T, hs) layout), the
cross-attention fusion with torch.nn.MultiheadAttention, and the MLP head."""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

PRESETS = {
    "tiny": dict(hidden=128, layers=2, heads=2, inter=512),
    "mini": dict(hidden=256, layers=4, heads=4, inter=1024),
    "small": dict(hidden=512, layers=4, heads=8, inter=2048),
    "base": dict(hidden=768, layers=12, heads=12, inter=3072),
}


class SelfAttention(nn.Module):
    def __init__(self, C, nh, p):
        super().__init__()
        self.nh, self.hs = nh, C // nh
        self.query, self.key, self.value = nn.Linear(C, C), nn.Linear(C, C), nn.Linear(C, C)
        self.dropout = nn.Dropout(p)

    def split(self, x):
        B, T, C = x.shape
        return x.view(B, T, self.nh, self.hs).permute(0, 2, 1, 3)

    def forward(self, x, mask=None):
        q, k, v = self.split(self.query(x)), self.split(self.key(x)), self.split(self.value(x))
        s = q @ k.transpose(-1, -2) / math.sqrt(self.hs)
        if mask is not None:
            s = s + mask
        p = self.dropout(torch.softmax(s, -1))
        return (p @ v).permute(0, 2, 1, 3).reshape(x.shape)


class BertLayer(nn.Module):
    def __init__(self, C, nh, I, p=0.1):
        super().__init__()
        self.attn = SelfAttention(C, nh, p)
        self.attn_out = nn.Linear(C, C)
        self.ln1 = nn.LayerNorm(C, eps=1e-12)
        self.inter = nn.Linear(C, I)
        self.out = nn.Linear(I, C)
        self.ln2 = nn.LayerNorm(C, eps=1e-12)
        self.drop = nn.Dropout(p)

    def forward(self, x, mask):
        a = self.ln1(self.drop(self.attn_out(self.attn(x, mask))) + x)
        return self.ln2(self.drop(self.out(F.gelu(self.inter(a)))) + a)


class Bert(nn.Module):
    def __init__(self, C, L, nh, I, vocab=30522, max_pos=512):
        super().__init__()
        self.word = nn.Embedding(vocab, C, padding_idx=0)
        self.pos = nn.Embedding(max_pos, C)
        self.tt = nn.Embedding(2, C)
        self.ln = nn.LayerNorm(C, eps=1e-12)
        self.drop = nn.Dropout(0.1)
        self.layers = nn.ModuleList([BertLayer(C, nh, I) for _ in range(L)])
        self.pooler = nn.Linear(C, C)

    def forward(self, ids, mask):
        T = ids.shape[1]
        h = self.word(ids) + self.pos(torch.arange(T).unsqueeze(0)) + self.tt(torch.zeros_like(ids))
        h = self.drop(self.ln(h))
        ext = (1.0 - mask[:, None, None, :].to(h.dtype)) * torch.finfo(h.dtype).min
        for l in self.layers:
            h = l(h, ext)
        return h, torch.tanh(self.pooler(h[:, 0]))


class ViTLayer(nn.Module):
    def __init__(self, C, nh, I):
        super().__init__()
        self.ln1 = nn.LayerNorm(C, eps=1e-12)
        self.attn = SelfAttention(C, nh, 0.0)
        self.attn_out = nn.Linear(C, C)
        self.ln2 = nn.LayerNorm(C, eps=1e-12)
        self.inter = nn.Linear(C, I)
        self.out = nn.Linear(I, C)

    def forward(self, x):
        h = self.attn_out(self.attn(self.ln1(x))) + x
        return self.out(F.gelu(self.inter(self.ln2(h)))) + h


class ViT(nn.Module):
    def __init__(self, C, L, nh, I, image=224, patch=16):
        super().__init__()
        n = (image // patch) ** 2
        self.proj = nn.Conv2d(3, C, patch, stride=patch)
        self.cls = nn.Parameter(torch.zeros(1, 1, C))
        self.pos = nn.Parameter(torch.zeros(1, n + 1, C))
        self.layers = nn.ModuleList([ViTLayer(C, nh, I) for _ in range(L)])
        self.ln = nn.LayerNorm(C, eps=1e-12)
        self.pooler = nn.Linear(C, C)

    def forward(self, px):
        x = self.proj(px).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], 1) + self.pos
        for l in self.layers:
            x = l(x)
        h = self.ln(x)
        return h, torch.tanh(self.pooler(h[:, 0]))


class Fusion(nn.Module):
    """Cross-attention fusion (the default variant), masked-mean pooling, MLP head."""

    def __init__(self, preset, num_labels=2, fusion_heads=8):
        super().__init__()
        c = PRESETS[preset]
        C = c["hidden"]
        self.text = Bert(C, c["layers"], c["heads"], c["inter"])
        self.image = ViT(C, c["layers"], c["heads"], c["inter"])
        self.t2i = nn.MultiheadAttention(C, fusion_heads, batch_first=True)
        self.i2t = nn.MultiheadAttention(C, fusion_heads, batch_first=True)
        self.tn, self.inorm = nn.LayerNorm(C), nn.LayerNorm(C)
        self.head = nn.Sequential(nn.Linear(2 * C, 512), nn.ReLU(), nn.Dropout(0.1), nn.Linear(512, num_labels))

    def forward(self, ids, mask, px):
        th, _ = self.text(ids, mask)
        ih, _ = self.image(px)
        t = self.tn(th + self.t2i(th, ih, ih, need_weights=False)[0])
        i = self.inorm(ih + self.i2t(ih, th, th, key_padding_mask=(mask == 0), need_weights=False)[0])
        m = mask.to(t.dtype).unsqueeze(-1)
        tv = (t * m).sum(1) / m.sum(1).clamp(min=1e-9)
        return self.head(torch.cat([tv, i.mean(1)], 1))
