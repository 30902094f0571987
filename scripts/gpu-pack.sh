#!/usr/bin/env bash
# Packs what scripts/gpu-check.sh needs on a GPU machine that has no Node and no network into .device/ (ignored by
# git, at most 64 MiB): the Node binary, Node's headers (for node-gyp), the production node_modules (prebuilt sharp
# and tokenizers for linux-x64) and the compiled JavaScript (dist/). The checkout itself travels separately.
#   bash scripts/gpu-pack.sh            then, on the GPU machine, from the checkout:   bash scripts/gpu-check.sh
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
out="$here/.device"
limit=$((64 * 1024 * 1024))
die() { echo "gpu-pack: $*" >&2; exit 1; }
command -v xz >/dev/null || die "xz is needed (apt-get install xz-utils)"
node_bin=$(command -v node) || die "node is not on PATH"
headers=$(dirname "$(dirname "$node_bin")")/include/node
[ -f "$headers/node_api.h" ] || headers=/usr/include/node
[ -f "$headers/node_api.h" ] || die "Node's headers were not found beside node or in /usr/include/node (apt-get install libnode-dev)"
rm -rf "$out" && mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "== the Node binary ($(node --version))"
xz -T0 -6 -c "$node_bin" > "$out/node.xz"
echo "== Node's headers from $headers"
mkdir -p "$work/headers/include" && cp -a "$headers" "$work/headers/include/node"
tar -C "$work/headers" -cJf "$out/node-headers.tar.xz" include
echo "== production node_modules (npm ci --omit=dev, no install scripts)"
cp "$here/package.json" "$here/package-lock.json" "$work/"
(cd "$work" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund >/dev/null)
tar -C "$work" -cJf "$out/node_modules.tar.xz" node_modules
echo "== dist/ (npm run build:all)"
(cd "$here" && npm run build:all >/dev/null)
tar -C "$here" -cJf "$out/dist.tar.xz" dist
size=$(du -cb "$out"/* | tail -1 | cut -f1)
ls -la "$out"
[ "$size" -le "$limit" ] || die "$out holds $((size / 1048576)) MiB, over the 64 MiB a device run carries"
echo "gpu-pack: $out holds $((size / 1048576)) MiB; carry it with the checkout (run's carry: [\".device\"])"
