#!/usr/bin/python3
"""PyTorch eager reference for `npm run bench` (Debian's python3-torch). Same shapes, threads and steps as the
mmtrain side; prints one JSON object per case on stdout."""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import json
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def peak_rss_mib(pid="self"):
    """Peak resident memory in MiB: VmHWM from /proc, which starts afresh at exec (getrusage's maxrss does not: a
    child forked from a large parent reports the parent's peak)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def op_overhead(n):
    a = torch.ones(1)
    b = torch.ones(1)
    for _ in range(1000):
        a + b
    runs = []
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(n):
            a + b
        runs.append((time.perf_counter() - t0) / n * 1e6)
    return {"case": "op_overhead", "us_per_op": statistics.median(runs), "runs": runs}


class Layer(nn.Module):
    """Post-norm encoder layer (BERT form): self-attention, residual, LayerNorm, GELU MLP, residual, LayerNorm."""

    def __init__(self, C, nh):
        super().__init__()
        self.attention = nn.MultiheadAttention(C, nh, batch_first=True)
        self.norm1 = nn.LayerNorm(C, eps=1e-12)
        self.fc1 = nn.Linear(C, 4 * C)
        self.fc2 = nn.Linear(4 * C, C)
        self.norm2 = nn.LayerNorm(C, eps=1e-12)

    def forward(self, x):
        a, _ = self.attention(x, x, x, need_weights=False)
        x = self.norm1(x + a)
        return self.norm2(x + self.fc2(F.gelu(self.fc1(x))))


def block(B, T, C, layers, nh, warmup, steps):
    torch.manual_seed(0)
    model = nn.Sequential(*[Layer(C, nh) for _ in range(layers)])
    x = torch.randn(B, T, C)
    times = []
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        y = model(x)
        y.mean().backward()
        model.zero_grad(set_to_none=True)
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    return {"case": "transformer_block", "B": B, "T": T, "C": C, "layers": layers, "median_s": med,
            "steps_per_s": 1 / med, "times": times}


def fusion_inputs(B, T):
    """Token ids (every other sample padded to 5/8 of T), mask, images, labels: the same on both sides."""
    ids = (torch.arange(B * T).reshape(B, T) * 7919 % 29000 + 1000).long()
    mask = torch.ones(B, T, dtype=torch.long)
    for b in range(1, B, 2):
        mask[b, (T * 5) // 8:] = 0
    ids = ids * mask
    px = torch.randn(B, 3, 224, 224)
    labels = torch.arange(B) % 2
    return ids, mask, px, labels


def fusion(preset, B, T, warmup, steps, bf16=False):
    from pytorch_models import Fusion
    torch.manual_seed(0)
    model = Fusion(preset).train()
    # torch.optim.AdamW as users get it (PyTorch 1.13: the per-tensor loop), clip_grad_norm_ over every parameter
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01)
    ids, mask, px, labels = fusion_inputs(B, T)
    times = []
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        # bf16: CPU autocast over fp32 master weights, the loss in fp32 (as mmtrain's trainer does)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(ids, mask, px)
        loss = F.cross_entropy(logits.float(), labels)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    return {"case": "fusion", "preset": preset, "B": B, "T": T, "bf16": bf16, "median_s": med, "samples_per_s": B / med, "times": times}


def decode(manifest):
    """The original design's image pipeline: PIL open, convert('RGB'), Resize((224, 224)), ToTensor, Normalize."""
    import json as _json
    from PIL import Image
    from torchvision import transforms as T
    base = os.path.dirname(manifest)
    files = [os.path.join(base, _json.loads(l)["image"]) for l in open(manifest) if l.strip()]
    tf = T.Compose([T.Resize((224, 224)), T.ToTensor(), T.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])])
    best = 0
    for _ in range(2):
        t0 = time.perf_counter()
        for i in range(0, len(files), 32):
            torch.stack([tf(Image.open(f).convert("RGB")) for f in files[i:i + 32]])
        best = max(best, len(files) / (time.perf_counter() - t0))
    return {"case": "decode", "images_per_s": best, "n": len(files)}


def decode_tar(pattern, workers, rounds=5):
    """A WebDataset-style pipeline as a user writes it with PyTorch alone: an IterableDataset over tar shards (Python's
    tarfile, samples grouped by key), PIL decode + convert('RGB'), torchvision Resize((224, 224)) / ToTensor /
    Normalize, the text kept beside; a DataLoader with `workers` worker processes, the shards split between them,
    batches of 32."""
    import glob as _glob
    import io
    import tarfile
    from PIL import Image
    from torchvision import transforms as T
    shards = sorted(_glob.glob(pattern))
    tf = T.Compose([T.Resize((224, 224)), T.ToTensor(), T.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])])

    class Shards(torch.utils.data.IterableDataset):
        def __iter__(self):
            info = torch.utils.data.get_worker_info()
            mine = shards if info is None else shards[info.id::info.num_workers]
            for shard in mine:
                with tarfile.open(shard) as t:
                    key, sample = None, {}
                    for m in t:
                        if not m.isfile():
                            continue
                        k, ext = m.name.split(".", 1)
                        if k != key and sample:
                            yield tf(Image.open(io.BytesIO(sample["jpg"])).convert("RGB")), sample["txt"].decode()
                            sample = {}
                        key = k
                        sample[ext] = t.extractfile(m).read()
                    if sample:
                        yield tf(Image.open(io.BytesIO(sample["jpg"])).convert("RGB")), sample["txt"].decode()

    loader = torch.utils.data.DataLoader(Shards(), batch_size=32, num_workers=workers, persistent_workers=workers > 0)
    rates = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        n = 0
        for x, _t in loader:
            n += x.shape[0]
        rates.append(n / (time.perf_counter() - t0))
    # as bench/stream.ts: the median epoch, the first (workers starting) left out
    timed = rates[1:] or rates
    return {"case": "decode_tar", "samples_per_s": statistics.median(timed), "best": max(timed), "n": n, "workers": workers, "rounds": rounds}


def matmul_rate(dtype, n=1024, reps=20):
    """GFLOP/s of an (n x n) @ (n x n) product in fp32 or bf16, median over repetitions (bench/blocks.ts matmulRate)."""
    torch.manual_seed(0)
    dt = torch.bfloat16 if dtype == "bfloat16" else torch.float32
    a, b = torch.randn(n, n).to(dt), torch.randn(n, n).to(dt)
    for _ in range(3):
        a @ b
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t0)
    return {"case": "matmul", "dtype": dtype, "n": n, "gflops": 2 * n ** 3 / statistics.median(times) / 1e9}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, required=True)
    p.add_argument("--case", required=True)
    p.add_argument("--n", type=int, default=200000)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--preset", default="tiny")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--tokens", type=int, default=32)
    p.add_argument("--manifest")
    p.add_argument("--shards")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--bf16", action="store_true")
    p.add_argument("--dtype", default="float32")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    if a.case == "op_overhead":
        r = op_overhead(a.n)
    elif a.case == "transformer_block":
        r = block(8, 128, 256, 4, 4, a.warmup, a.steps)
    elif a.case == "decode":
        r = decode(a.manifest)
    elif a.case == "decode_tar":
        r = decode_tar(a.shards, a.workers, a.rounds)
    elif a.case == "matmul":
        r = matmul_rate(a.dtype)
    elif a.case == "fusion":
        r = fusion(a.preset, a.batch, a.tokens, a.warmup, a.steps, a.bf16)
    else:
        raise SystemExit(f"unknown case {a.case}")
    r["peak_rss_mib"] = peak_rss_mib()
    r["torch"] = torch.__version__
    r["threads"] = torch.get_num_threads()
    print(json.dumps(r))


if __name__ == "__main__":
    main()
