#!/usr/bin/env bash
# The package as a user gets it: `npm pack` this checkout, check what the tarball holds, install it into an empty
# folder (npm's install step compiles the addon there, as it would for any user) and run the CLI's demo there.
# `npm run pack-test`; CI runs it after the tests. It needs what `npm ci` needs (LibTorch, g++, make, python3) and
# takes a few minutes, mostly the addon build. MMTRAIN_PACK_KEEP=1 keeps the temporary folder for a look.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
work=$(mktemp -d "${TMPDIR:-/tmp}/mmtrain-pack.XXXXXX")
cleanup() {
  if [ "${MMTRAIN_PACK_KEEP:-0}" = 1 ]; then echo "pack-test: kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
fail() {
  echo "pack-test: FAILED at step '$1': $2" >&2
  exit 1
}
start=$SECONDS

step='npm pack'
echo "== pack-test: $step"
mkdir "$work/pack"
# prepack and prepare rebuild dist/src from the sources, so the tarball holds what they compile to now
npm pack --pack-destination "$work/pack" >"$work/pack.log" 2>&1 || { cat "$work/pack.log" >&2; fail "$step" 'npm pack exited non-zero'; }
tarballs=("$work"/pack/*.tgz)
[ ${#tarballs[@]} = 1 ] && [ -f "${tarballs[0]}" ] || fail "$step" "expected one tarball in $work/pack, found: ${tarballs[*]}"
tarball=${tarballs[0]}
echo "pack-test: $(basename "$tarball"), $(du -k "$tarball" | cut -f1) KiB"

step='tarball contents'
echo "== pack-test: $step"
tar tzf "$tarball" | sort >"$work/contents.txt" || fail "$step" "tar cannot list $tarball"
# what an install needs: the compiled JavaScript and its types, the addon's sources and build scripts, the bundled
# tokenizer
for need in package/package.json package/dist/src/cli/main.js package/dist/src/index.js package/dist/src/index.d.ts \
  package/binding.gyp package/native/build.cjs package/native/libtorch.cjs package/native/check-link.cjs \
  package/native/src/addon.cc package/assets/bert-base-uncased/tokenizer.json; do
  grep -qxF "$need" "$work/contents.txt" || fail "$step" "$need is missing from the tarball"
done
# development outputs and local builds stay out: compiled tests, bench and scripts, the addon built here, sources
for prefix in package/dist/test/ package/dist/bench/ package/dist/scripts/ package/build/ package/node_modules/ \
  package/src/ package/test/ package/bench/; do
  if grep -q "^$prefix" "$work/contents.txt"; then
    fail "$step" "the tarball holds $prefix ($(grep -c "^$prefix" "$work/contents.txt") files)"
  fi
done
echo "pack-test: $(wc -l <"$work/contents.txt") files, dist/src, native/, binding.gyp and assets/ present, no tests or builds"

step='npm install of the tarball into an empty folder'
echo "== pack-test: $step (its install script approved; compiles the addon)"
mkdir "$work/app"
cd "$work/app"
# as a user does (README): mmtrain's install script approved in the project (npm 11.19 and later run a dependency's
# only once approved, where the project has an allowScripts field)
echo '{ "name": "app", "private": true, "allowScripts": { "mmtrain": true } }' >package.json
t0=$SECONDS
npm install --no-audit --no-fund "$tarball" >"$work/install.log" 2>&1 || { tail -n 60 "$work/install.log" >&2; fail "$step" "npm install exited non-zero (the last 60 lines of its output are above)"; }
[ -f node_modules/mmtrain/build/Release/mmtrain_native.node ] || fail "$step" 'npm install succeeded but built no node_modules/mmtrain/build/Release/mmtrain_native.node'
if grep -q EBADENGINE "$work/install.log"; then
  grep EBADENGINE "$work/install.log" >&2
  fail "$step" "a dependency does not accept Node $(node --version)"
fi
echo "pack-test: installed in $((SECONDS - t0)) s"

step='npx mmtrain demo --n 800 --epochs 2'
echo "== pack-test: $step"
# --no: run the installed bin or fail, never fetch a package of that name from the registry
npx --no mmtrain demo --n 800 --epochs 2 2>&1 | tee "$work/demo.log" || fail "$step" 'the demo exited non-zero'
grep -Eq '^test accuracy: [0-9.]+% on [1-9][0-9]* pairs' "$work/demo.log" || fail "$step" 'the demo printed no test accuracy line'

cd "$root"
echo "== pack-test: passed in $((SECONDS - start)) s"
