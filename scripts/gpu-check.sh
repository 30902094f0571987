#!/usr/bin/env bash
# The GPU check, unattended, on a machine with an NVIDIA GPU, a pip PyTorch (its LibTorch) and no network, from
# the checkout with .device/ (scripts/gpu-pack.sh) beside it. It builds the addon against that PyTorch's LibTorch,
# checks its link, prints `mmtrain info`, runs the GPU tests (test-gpu/: cuda against cpu for the model's forward
# and gradients of every fusion type, device moves, fp32/bf16/fp16 training and a GPU checkpoint resumed on the
# CPU), the CPU parity suite against this LibTorch, and the demo on the GPU. Everything it prints also goes to
# $OUT (default /tmp/gpu-check). Exit status: the number of failed stages.
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-/tmp/gpu-check}
mkdir -p "$OUT"
dev="$here/.device"
tools=/tmp/mmtrain-device
failed=0
stage() { # stage NAME COMMAND...: runs one stage, logging to $OUT/NAME.log
  local name=$1; shift
  echo "== $name"
  local t0=$SECONDS
  if (cd "$here" && "$@") > "$OUT/$name.log" 2>&1; then echo "   ok ($((SECONDS - t0)) s)"; else echo "   FAILED ($((SECONDS - t0)) s): tail of $OUT/$name.log"; tail -30 "$OUT/$name.log"; failed=$((failed + 1)); fi
}

[ -d "$dev" ] || { echo "gpu-check: $dev is missing: run scripts/gpu-pack.sh where Node is, and carry .device/"; exit 100; }
command -v g++ >/dev/null || { echo "gpu-check: g++ is missing; the addon cannot be built here"; exit 100; }
nvidia-smi -L > "$OUT/gpus.txt" 2>&1 || true
cat "$OUT/gpus.txt"
rm -rf "$tools" && mkdir -p "$tools/bin"
xz -dc "$dev/node.xz" > "$tools/bin/node" && chmod +x "$tools/bin/node"
tar -C "$tools" -xJf "$dev/node-headers.tar.xz"
[ -d "$here/node_modules" ] || tar -C "$here" -xJf "$dev/node_modules.tar.xz"
rm -rf "$here/dist" && tar -C "$here" -xJf "$dev/dist.tar.xz"
export PATH="$tools/bin:$PATH"
export npm_config_nodedir="$tools"
LIBTORCH=$(python3 -c 'import os, torch; print(os.path.dirname(torch.__file__))') || { echo "gpu-check: python3 cannot import torch"; exit 100; }
export LIBTORCH
python3 -c 'import torch; print("torch", torch.__version__, "CUDA", torch.version.cuda, "devices", torch.cuda.device_count())' | tee "$OUT/torch.txt"

stage build node native/build.cjs
stage link node native/check-link.cjs build/Release/mmtrain_native.node libtorch_cuda.so
stage info node dist/src/cli/main.js info
cat "$OUT/info.log"
stage gpu-tests node --test --test-concurrency=1 dist/test-gpu/
stage parity node --test --test-concurrency=1 dist/test/parity.test.js dist/test/models.test.js
stage demo node dist/src/cli/main.js demo --device cuda --out /tmp/mmtrain-gpu-demo
tail -3 "$OUT/demo.log"
echo "gpu-check: $failed stage(s) failed; logs in $OUT"
exit "$failed"
