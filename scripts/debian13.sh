#!/usr/bin/env bash
# Builds and tests mmtrain on Debian 13 ("trixie") inside a chroot, as a user with today's Debian stable would:
# LibTorch 2.6 from `libtorch-dev`, Debian's Node 20 and npm 9. Run as root (debootstrap and chroot need it).
#
#   scripts/debian13.sh cpu    debootstrap a root, install the CPU packages, `npm ci && npm test` on a copy of the
#                              checkout (tracked and untracked-not-ignored files, plus ../shared when present)
#   scripts/debian13.sh cuda   then, in the same root: replace the CPU LibTorch by Debian's CUDA build
#                              (`libtorch-cuda-dev`, contrib; CUDA libraries from non-free), rebuild the addon and
#                              check that it links against libtorch_cuda with every symbol resolved (it cannot be
#                              loaded here: Debian's cuDNN comes from an installer that downloads it)
#   scripts/debian13.sh all    both, in that order (what CI runs)
#   scripts/debian13.sh shell  a shell in the root, mounts set up
#
# MMTRAIN_TRIXIE_ROOT picks the folder (default /var/tmp/mmtrain-trixie); an existing root is reused, so a second
# run only copies the checkout again. MMTRAIN_TRIXIE_FRESH=1 deletes it first. MMTRAIN_TRIXIE_MIRROR picks the
# mirror (default http://deb.debian.org/debian). Every step that fails names what was missing.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
root=${MMTRAIN_TRIXIE_ROOT:-/var/tmp/mmtrain-trixie}
mirror=${MMTRAIN_TRIXIE_MIRROR:-http://deb.debian.org/debian}
what=${1:-all}
# What a Debian 13 user installs (README's second install line) plus the test suite's browser.
cpu_packages=(nodejs npm libnode-dev g++ make python3 libtorch-dev libopenblas0-pthread libgloo-dev libjpeg-dev libsnappy-dev chromium fonts-liberation git ca-certificates)
cuda_packages=(libtorch-cuda-dev libnccl-dev libgloo-cuda-dev)

say() { printf '\n== debian13: %s\n' "$*"; }
die() { printf '\ndebian13: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root: debootstrap and chroot need it (sudo $0 $what)"
case "$what" in cpu|cuda|all|shell) ;; *) die "unknown step \"$what\": expected cpu, cuda, all or shell" ;; esac

mounted=()
cleanup() {
  local i
  for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do umount -l "${mounted[i]}" 2>/dev/null || true; done
}
trap cleanup EXIT
mount_in() { # type-or-bind source target
  mkdir -p "$3"
  if [ "$1" = rbind ]; then mount --rbind "$2" "$3"; else mount -t "$1" "$2" "$3"; fi
  mounted+=("$3")
}
in_root() { chroot "$root" /usr/bin/env -i HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt CI="${CI:-1}" npm_config_update_notifier=false \
  npm_config_fund=false npm_config_audit=false "$@"; }

# The host's CA bundle, and its local CAs so that the root's own update-ca-certificates (run when ca-certificates
# is installed or upgraded there) keeps them.
copy_ca() {
  mkdir -p "$root/etc/ssl/certs" "$root/usr/local/share/ca-certificates"
  if [ -d /usr/local/share/ca-certificates ]; then cp -a /usr/local/share/ca-certificates/. "$root/usr/local/share/ca-certificates/"; fi
  if [ -f /etc/ssl/certs/ca-certificates.crt ]; then cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"; fi
}

# Mounts a killed earlier run left inside the root (the EXIT trap cannot run after SIGKILL) would stop rm below.
unmount_stale() {
  local m
  [ -d "$root" ] || return 0
  for m in $(awk -v r="$root" '$2 == r || index($2, r "/") == 1 {print $2}' /proc/self/mounts | sort -r); do umount -l "$m" 2>/dev/null || true; done
}

make_root() {
  unmount_stale
  if [ "${MMTRAIN_TRIXIE_FRESH:-0}" = 1 ] && [ -d "$root" ]; then say "deleting $root"; rm -rf --one-file-system "$root"; fi
  if [ ! -x "$root/usr/bin/apt-get" ] || [ ! -f "$root/.mmtrain-bootstrapped" ]; then
    command -v debootstrap >/dev/null || { apt-get update -q && apt-get install -y -q --no-install-recommends debootstrap; } \
      || die "debootstrap is missing and could not be installed (apt-get install debootstrap)"
    [ -f /usr/share/keyrings/debian-archive-trixie-stable.gpg ] || [ -f /usr/share/keyrings/debian-archive-keyring.gpg ] \
      || die "Debian's archive keyring is missing (apt-get install debian-archive-keyring)"
    rm -rf --one-file-system "$root"
    say "debootstrap trixie into $root ($mirror)"
    debootstrap --variant=minbase --components=main,contrib,non-free,non-free-firmware trixie "$root" "$mirror" \
      || die "debootstrap of Debian 13 (trixie) from $mirror failed (see above)"
    touch "$root/.mmtrain-bootstrapped"
  fi
  # The root reaches the package registries through the host's resolver and CA bundle.
  cp /etc/resolv.conf "$root/etc/resolv.conf"
  copy_ca
  mount_in proc proc "$root/proc"
  mount_in sysfs sysfs "$root/sys"
  mount_in rbind /dev "$root/dev"
  mount --make-rslave "$root/dev"
}

apt_install() {
  in_root apt-get update -q || die "apt-get update inside the Debian 13 root failed"
  # --include would not resolve every dependency (npm's); a plain apt-get install inside resolves them all.
  local missing=()
  for p in "$@"; do in_root apt-cache show "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} = 0 ] || die "Debian 13 has no package named: ${missing[*]} (components main, contrib, non-free)"
  in_root apt-get install -y -q --no-install-recommends "$@" || { in_root apt-get -f install -y -q; in_root apt-get install -y -q --no-install-recommends "$@"; } \
    || die "installing ${*} inside the Debian 13 root failed (see above)"
  copy_ca
}

copy_checkout() {
  say "copying the checkout to $root/work/mmtrain"
  rm -rf --one-file-system "$root/work"
  mkdir -p "$root/work/mmtrain"
  if git -C "$here" -c safe.directory="$here" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    (cd "$here" && git -c safe.directory="$here" ls-files -z --cached --others --exclude-standard | tar --null -T - -cf - --ignore-failed-read) | tar -xf - -C "$root/work/mmtrain"
  else
    (cd "$here" && tar --exclude=./node_modules --exclude=./build --exclude=./dist -cf - .) | tar -xf - -C "$root/work/mmtrain"
  fi
  # Tests read fixtures from ../shared when it sits beside the checkout (the CI layout).
  if [ -d "$here/../shared" ]; then mkdir -p "$root/work/shared" && cp -a "$here/../shared/." "$root/work/shared/"; fi
}

step_cpu() {
  say "installing ${cpu_packages[*]}"
  apt_install "${cpu_packages[@]}"
  in_root sh -c 'echo "node $(node --version), npm $(npm --version), $(dpkg-query -W -f="\${Package} \${Version}" libtorch-dev)"'
  copy_checkout
  say "npm ci (Debian 13, LibTorch 2.6, CPU)"
  local t0=$SECONDS
  in_root sh -c 'cd /work/mmtrain && npm ci' || die "npm ci failed on Debian 13 (see above)"
  say "npm ci took $((SECONDS - t0)) s"
  say "npm test (Debian 13, LibTorch 2.6, CPU)"
  in_root sh -c 'cd /work/mmtrain && node dist/src/cli/main.js info && npm test' || die "npm test failed on Debian 13 (see above)"
}

# Debian's nvidia-cudnn (contrib) is an installer that downloads cuDNN from outside, which fails here and leaves
# libtorch-cuda unconfigured. A stand-in package of the same version satisfies the dependency; cuDNN itself stays
# missing, which is why the CUDA build is compiled and linked here, never loaded.
stub_cudnn() {
  local v arch
  v=$(in_root apt-cache policy nvidia-cudnn | awk '/Candidate:/ {print $2}')
  [ -n "$v" ] && [ "$v" != "(none)" ] || die "Debian 13 has no nvidia-cudnn package (contrib), which libtorch-cuda-2.6 needs"
  in_root dpkg-query -W -f='${Description}' nvidia-cudnn 2>/dev/null | grep -q 'mmtrain stand-in' && return 0
  arch=$(in_root dpkg --print-architecture)
  mkdir -p "$root/tmp/cudnn-stub/DEBIAN"
  printf 'Package: nvidia-cudnn\nVersion: %s\nArchitecture: %s\nMaintainer: mmtrain <ci@localhost>\nDescription: mmtrain stand-in for nvidia-cudnn\n its installer downloads cuDNN from outside, which cannot be reached here\n' "$v" "$arch" \
    > "$root/tmp/cudnn-stub/DEBIAN/control"
  in_root dpkg-deb --build /tmp/cudnn-stub /tmp/nvidia-cudnn-stub.deb >/dev/null && in_root dpkg -i /tmp/nvidia-cudnn-stub.deb \
    && in_root apt-mark hold nvidia-cudnn >/dev/null || die "could not install the nvidia-cudnn stand-in"
}

step_cuda() {
  say "installing ${cuda_packages[*]} (they replace libtorch-dev and libgloo-dev)"
  in_root apt-get update -q >/dev/null || die "apt-get update inside the Debian 13 root failed"
  stub_cudnn
  apt_install "${cuda_packages[@]}"
  if [ "$what" = cuda ]; then # alone: this checkout, its packages without their build (the CPU step did it in "all")
    copy_checkout
    in_root sh -c 'cd /work/mmtrain && npm ci --ignore-scripts' || die "npm ci --ignore-scripts failed on Debian 13 (see above)"
  fi
  say "building the addon against Debian 13's CUDA LibTorch"
  in_root sh -c 'cd /work/mmtrain && npm run build:native' || die "the addon failed to compile or link against libtorch-cuda-dev (see above)"
  in_root sh -c 'cd /work/mmtrain && node native/check-link.cjs build/Release/mmtrain_native.node libtorch_cuda.so' \
    || die "the CUDA build of the addon does not link as it should (see above)"
  # libtorch-cuda-dev does not bring the CUDA runtime's headers: the build above had none (GPU details and the
  # caching allocator's counters left out); with nvidia-cuda-dev the device code that reads them compiles too
  say "building again with the CUDA runtime headers (nvidia-cuda-dev)"
  apt_install nvidia-cuda-dev
  in_root sh -c 'cd /work/mmtrain && npm run build:native' || die "the addon failed to compile against libtorch-cuda-dev with nvidia-cuda-dev (see above)"
  in_root sh -c 'cd /work/mmtrain && node native/check-link.cjs build/Release/mmtrain_native.node libtorch_cuda.so' \
    || die "the CUDA build of the addon (with the CUDA runtime headers) does not link as it should (see above)"
}

make_root
case "$what" in
  cpu) step_cpu ;;
  cuda) step_cuda ;;
  all) step_cpu; step_cuda ;;
  shell) in_root bash -l ;;
esac
say "done ($what)"
