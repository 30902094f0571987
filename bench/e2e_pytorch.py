#!/usr/bin/python3
"""End-to-end training in PyTorch for `npm run bench` (Debian's python3-torch, -torchvision, -pil): the same model,
initial weights (mmtrain's, from safetensors), hyperparameters, schedule and JPEGs as mmtrain's run, in two pipelines.

  original  the original design's pipeline (../shared/design/ORIGIN.md): PIL open + convert('RGB'), torchvision
            Resize -> ToTensor -> Normalize per sample in the training process (DataLoader without workers), text
            padded to 128 tokens, fp32; its defects fixed: labels returned, the schedule stepped once per step.
  tuned     what a PyTorch user tuning for speed does: bf16 autocast (fp32 master weights), dynamic padding to the
            longest caption of the batch, a DataLoader with persistent workers; --fp32: the same without autocast.

Both evaluate validation accuracy after every epoch and stop at the first epoch that reaches --target (or after
--epochs, or when --budget-s has passed). Token ids come pre-tokenized from mmtrain's run (the bert-base-uncased
tokenizer; Debian has no Python tokenizers package): tokenization is left out of these timings, which favours them.
Prints one JSON object."""
import argparse
import json
import math
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test", "fixtures"))

import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms as T

from pytorch_models import Fusion, parameter_groups
from pytorch_ref import peak_rss_mib
from safetensors_io import read_safetensors


class Pairs(Dataset):
    def __init__(self, manifest, ids, size, pad_to):
        base = os.path.dirname(manifest)
        rows = [json.loads(l) for l in open(manifest) if l.strip()]
        assert len(rows) == len(ids), f"{manifest}: {len(rows)} lines but {len(ids)} token lists"
        self.items = [(os.path.join(base, r["image"]), ids[i], int(r["label"])) for i, r in enumerate(rows)]
        self.tf = T.Compose([T.Resize((size, size)), T.ToTensor(), T.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])])
        self.pad_to = pad_to

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        path, ids, label = self.items[i]
        image = self.tf(Image.open(path).convert("RGB"))
        n = self.pad_to or len(ids)
        t = torch.zeros(n, dtype=torch.long)
        t[: len(ids)] = torch.tensor(ids[:n])
        mask = (torch.arange(n) < len(ids)).long()
        return image, t, mask, label


class PlanSampler:
    """mmtrain's batches, epoch by epoch (each iteration is the next epoch), so every side sees the same order."""

    def __init__(self, plans):
        self.plans, self.epoch = plans, 0

    def __iter__(self):
        plan = self.plans[min(self.epoch, len(self.plans) - 1)]
        self.epoch += 1
        return iter(plan)

    def __len__(self):
        return len(self.plans[0])


def pad_collate(batch):
    """Dynamic padding: to the longest caption of the batch."""
    T_ = max(len(b[1]) for b in batch)
    ids = torch.zeros(len(batch), T_, dtype=torch.long)
    mask = torch.zeros(len(batch), T_, dtype=torch.long)
    for i, (_, t, m, _) in enumerate(batch):
        ids[i, : len(t)] = t
        mask[i, : len(m)] = m
    return torch.stack([b[0] for b in batch]), ids, mask, torch.tensor([b[3] for b in batch])


def lr_factor(step, total, warmup):
    """mmtrain's schedule (src/train/schedule.ts): linear warmup, then cosine to 0, stepped once per optimizer step."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return 0.5 * (1 + math.cos(math.pi * progress))


def evaluate(model, loader, bf16):
    model.eval()
    right = n = 0
    with torch.no_grad():
        for px, ids, mask, y in loader:
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                logits = model(ids, mask, px)
            right += (logits.float().argmax(1) == y).sum().item()
            n += len(y)
    model.train()
    return right / n


class Footprint:
    """The run's memory as one number, comparable with a single process's peak RSS: the main process's resident set
    plus the pages each DataLoader worker holds privately (what it shares with the main process, the libraries it
    was forked with, is counted once), sampled every 0.2 s; never less than the main process's own peak (VmHWM).
    Sampling can miss a short spike, so this errs low, in PyTorch's favour."""

    def __init__(self):
        self.peak_kib = 0
        self.workers_peak_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @staticmethod
    def _children(pid):
        out = []
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{tid}/children") as f:
                    out += [int(c) for c in f.read().split()]
            except OSError:
                pass
        return out

    @staticmethod
    def _kib(path, keys):
        total = 0
        try:
            with open(path) as f:
                for line in f:
                    if line.split(":")[0] in keys:
                        total += int(line.split()[1])
        except OSError:
            pass
        return total

    def _sample(self):
        pid = os.getpid()
        main = self._kib(f"/proc/{pid}/status", ("VmRSS",))
        workers = sum(self._kib(f"/proc/{c}/smaps_rollup", ("Private_Clean", "Private_Dirty")) for c in self._children(pid))
        self.peak_kib = max(self.peak_kib, main + workers)
        self.workers_peak_kib = max(self.workers_peak_kib, workers)

    def _run(self):
        while not self._stop.wait(0.2):
            self._sample()

    def stop(self):
        self._stop.set()
        self._thread.join()
        self._sample()
        return max(self.peak_kib / 1024, peak_rss_mib()), self.workers_peak_kib / 1024


def build_model(spec):
    """The run's model with mmtrain's initial weights, in training mode."""
    m = spec["model"]
    model = Fusion(text=m["text"], image=m["image"], fusion_num_heads=m["fusion_num_heads"], head_hidden_size=m["head_hidden_size"],
                   head_dropout=m["head_dropout"], num_labels=m["num_labels"])
    state = read_safetensors(spec["init"])
    # mmtrain's table has the demo's 64 positions; the original pads to 128. Rows past the longest caption only ever
    # embed masked padding, which no real token attends to and the pooling skips, so they never reach the loss.
    key = "text_encoder.embeddings.position_embeddings.weight"
    rows = model.text_config["max_position_embeddings"]
    if key in state and state[key].shape[0] < rows:
        extra = torch.randn(rows - state[key].shape[0], state[key].shape[1]) * m["text"]["initializer_range"]
        state[key] = torch.cat([state[key], extra])
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("position_ids")]
    if missing or unexpected:
        raise SystemExit(f"{spec['init']}: missing {missing}, unexpected {unexpected}")
    model.train()
    return model


def phases(spec, bf16):
    """Median milliseconds of each phase of a training step (forward with the loss, backward, clip_grad_norm_, AdamW
    step with zero_grad) on the first batches of the run's plan: their token ids dynamically padded, random pixels.
    bench/e2e-phases.ts times the same on mmtrain's side."""
    import statistics
    tokens = json.load(open(spec["tokens"]))
    ids, plan = tokens["train"], tokens["plans"][0]
    labels = [int(json.loads(l)["label"]) for l in open(spec["train"]) if l.strip()]
    torch.manual_seed(0)
    model = build_model(spec)
    h = spec["train_args"]
    opt = torch.optim.AdamW(parameter_groups(model, h["weight_decay"]), lr=h["lr"], betas=tuple(h["betas"]), eps=h["eps"])
    params = [q for q in model.parameters() if q.requires_grad]
    S = spec["model"]["image"]["image_size"]
    times = {k: [] for k in ("forward", "backward", "clip", "optimizer")}
    for i in range(PHASE_WARMUP + PHASE_STEPS):
        rows = plan[i % len(plan)]
        T_ = max(len(ids[r]) for r in rows)
        x = torch.zeros(len(rows), T_, dtype=torch.long)
        mask = torch.zeros(len(rows), T_, dtype=torch.long)
        for b, r in enumerate(rows):
            x[b, : len(ids[r])] = torch.tensor(ids[r])
            mask[b, : len(ids[r])] = 1
        px = torch.randn(len(rows), 3, S, S)
        y = torch.tensor([labels[r] for r in rows])
        t = [time.perf_counter()]
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(x, mask, px)
        loss = F.cross_entropy(logits.float(), y)
        loss.item()
        t.append(time.perf_counter())
        loss.backward()
        t.append(time.perf_counter())
        torch.nn.utils.clip_grad_norm_(params, h["clip_grad_norm"])
        t.append(time.perf_counter())
        opt.step()
        opt.zero_grad(set_to_none=True)
        t.append(time.perf_counter())
        if i >= PHASE_WARMUP:
            for k, name in enumerate(times):
                times[name].append((t[k + 1] - t[k]) * 1000)
    ms = {k: statistics.median(v) for k, v in times.items()}
    return {"precision": "bf16" if bf16 else "fp32", "steps": PHASE_STEPS, "batch": len(plan[0]), "median_ms": ms, "step_ms": sum(ms.values())}


# the same counts as bench/e2e-phases.ts
PHASE_WARMUP = 10
PHASE_STEPS = 60


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--mode", choices=["original", "tuned", "phases"], required=True)
    p.add_argument("--spec", required=True, help="JSON written by bench/e2e.ts: data, model, init, hyperparameters")
    p.add_argument("--threads", type=int, required=True)
    p.add_argument("--budget-s", type=float, default=1e9)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--fp32", action="store_true", help="tuned: without autocast")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    spec = json.load(open(a.spec))
    if a.mode == "phases":
        print(json.dumps(phases(spec, spec["precision"] == "bf16" and not a.fp32)))
        return
    footprint = Footprint()
    tokens = json.load(open(spec["tokens"]))
    bf16 = a.mode == "tuned" and spec["precision"] == "bf16" and not a.fp32
    pad_to = 128 if a.mode == "original" else None
    torch.manual_seed(spec["seed"])

    m = spec["model"]
    model = build_model(spec)

    size = m["image"]["image_size"]
    train_ds = Pairs(spec["train"], tokens["train"], size, pad_to)
    val_ds = Pairs(spec["val"], tokens["val"], size, pad_to)
    h = spec["train_args"]
    if a.mode == "original":
        train_dl = DataLoader(train_ds, batch_sampler=PlanSampler(tokens["plans"]))
        val_dl = DataLoader(val_ds, batch_size=h["eval_batch_size"])
    else:
        kw = dict(num_workers=a.workers, persistent_workers=a.workers > 0, collate_fn=pad_collate)
        train_dl = DataLoader(train_ds, batch_sampler=PlanSampler(tokens["plans"]), **kw)
        val_dl = DataLoader(val_ds, batch_size=h["eval_batch_size"], **kw)

    opt = torch.optim.AdamW(parameter_groups(model, h["weight_decay"]), lr=h["lr"], betas=tuple(h["betas"]), eps=h["eps"])
    total = h["epochs"] * len(train_dl)
    warmup = round(h["warmup_ratio"] * total)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, total, warmup))
    params = [q for q in model.parameters() if q.requires_grad]

    epochs = []
    reached = None
    t0 = time.perf_counter()
    for epoch in range(h["epochs"]):
        te = time.perf_counter()
        for px, ids, mask, y in train_dl:
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                logits = model(ids, mask, px)
            loss = F.cross_entropy(logits.float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, h["clip_grad_norm"])
            opt.step()
            sched.step()
        train_s = time.perf_counter() - te
        acc = evaluate(model, val_dl, bf16)
        elapsed = time.perf_counter() - t0
        epochs.append({"epoch": epoch + 1, "train_s": train_s, "val_accuracy": acc, "elapsed_s": elapsed, "last_loss": loss.item()})
        print(json.dumps({"progress": a.mode, **epochs[-1]}), file=sys.stderr, flush=True)
        if acc >= spec["target"]:
            reached = elapsed
            break
        if elapsed > a.budget_s:
            break
    rss = peak_rss_mib()
    run_mib, workers_private_mib = footprint.stop()
    print(json.dumps({"mode": a.mode, "bf16": bf16, "time_to_target_s": reached, "target": spec["target"], "epochs": epochs,
                      "median_train_epoch_s": sorted(e["train_s"] for e in epochs)[len(epochs) // 2],
                      "peak_rss_mib": run_mib, "peak_rss_main_mib": rss,
                      "peak_private_workers_mib": workers_private_mib, "torch": torch.__version__, "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
