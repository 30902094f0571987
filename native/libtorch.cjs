#!/usr/bin/env node
// Locates LibTorch for binding.gyp. Called as `node native/libtorch.cjs <what>` where what is one of
// include | libdirs | libs | defines | ldflags. LIBTORCH=/dir selects an official LibTorch (CPU or CUDA) or a
// pip torch's `torch/` folder; otherwise Debian's libtorch-dev in the system paths is used.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { execFileSync } = require('node:child_process');

function fail(msg) {
  process.stderr.write(`\nmmtrain: ${msg}\n\n`);
  process.exit(1);
}

function locate() {
  const root = process.env.LIBTORCH;
  if (root) {
    const inc = path.join(root, 'include');
    const lib = path.join(root, 'lib');
    if (!fs.existsSync(path.join(inc, 'ATen', 'ATen.h'))) {
      fail(`LIBTORCH=${root} does not look like a LibTorch folder: ${inc}/ATen/ATen.h is missing.\n` +
        'Point LIBTORCH at the unpacked libtorch/ folder of an official zip or at the torch/ folder of a pip install.');
    }
    return { include: [inc, path.join(inc, 'torch', 'csrc', 'api', 'include')], libdir: lib };
  }
  const sysInc = '/usr/include';
  if (!fs.existsSync(path.join(sysInc, 'ATen', 'ATen.h'))) {
    fail('LibTorch was not found.\n' +
      '  On Debian/Ubuntu: sudo apt-get install -y libtorch-dev libopenblas0-pthread\n' +
      '  Elsewhere: unpack an official LibTorch (CPU or CUDA) and set LIBTORCH=/path/to/libtorch,\n' +
      '  or set LIBTORCH to the torch/ folder of a pip install; then run npm ci (or npm run build) again.');
  }
  const multiarch = ['/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/lib64', '/usr/lib']
    .find((d) => fs.existsSync(path.join(d, 'libtorch_cpu.so')));
  if (!multiarch) fail('LibTorch headers are in /usr/include but libtorch_cpu.so was not found; reinstall libtorch-dev.');
  return { include: [sysInc, path.join(sysInc, 'torch', 'csrc', 'api', 'include')], libdir: multiarch };
}

// Node builds addons with _GLIBCXX_USE_CXX11_ABI=1. Official pre-cxx11 LibTorch zips and pip wheels before 2.7
// use the old ABI; detect it from libc10's exported symbols so linking does not fail with __cxx11 references.
function cxx11Abi(libdir) {
  if (process.env.MMTRAIN_CXX11_ABI === '0' || process.env.MMTRAIN_CXX11_ABI === '1') return process.env.MMTRAIN_CXX11_ABI;
  try {
    const out = execFileSync('nm', ['-D', '--defined-only', path.join(libdir, 'libc10.so')], { encoding: 'utf8', maxBuffer: 1 << 28 });
    return out.includes('__cxx11') ? '1' : '0';
  } catch {
    return '1';
  }
}

const where = locate();
const hasCuda = fs.existsSync(path.join(where.libdir, 'libtorch_cuda.so'));
// A CUDA LibTorch's headers include the CUDA runtime's (cuda_runtime_api.h), which it does not ship: the CUDA toolkit
// ($CUDA_HOME, /usr/local/cuda), Debian's nvidia-cuda-dev (/usr/include) or a pip wheel's nvidia-cuda-runtime
// package beside torch/ have them. Without them the addon leaves out GPU details and allocator counters.
function cudaRuntimeInclude() {
  const torchRoot = process.env.LIBTORCH ? path.resolve(process.env.LIBTORCH) : null;
  const candidates = [
    process.env.CUDA_HOME && path.join(process.env.CUDA_HOME, 'include'),
    process.env.CUDA_PATH && path.join(process.env.CUDA_PATH, 'include'),
    '/usr/local/cuda/include',
    torchRoot && path.join(torchRoot, '..', 'nvidia', 'cuda_runtime', 'include'),
    torchRoot && path.join(torchRoot, '..', 'nvidia', 'cu13', 'include'),
  ].filter(Boolean);
  return candidates.find((d) => fs.existsSync(path.join(d, 'cuda_runtime_api.h'))) ?? null;
}
if (hasCuda && !where.include.some((d) => fs.existsSync(path.join(d, 'cuda_runtime_api.h')))) {
  const inc = cudaRuntimeInclude();
  if (inc) where.include.push(inc);
}
// Distributed training needs c10d's Gloo process group, whose header includes Gloo's own headers: Debian ships them
// in libgloo-dev (linked as -lgloo); a LibTorch folder that carries include/gloo links Gloo from libtorch_cpu.
// native/src/distributed.cc detects the headers itself (__has_include), so only the link flags depend on this.
const glooInclude = [...where.include, '/usr/include'].find((d) => fs.existsSync(path.join(d, 'gloo', 'algorithm.h')));
const hasGloo = Boolean(glooInclude) && where.include.some((d) => fs.existsSync(path.join(d, 'torch', 'csrc', 'distributed', 'c10d', 'ProcessGroupGloo.hpp')));
const systemGloo = ['/usr/lib/libgloo.so', path.join(where.libdir, 'libgloo.so')].find((f) => fs.existsSync(f));
const what = process.argv[2];
switch (what) {
  case 'include':
    console.log(where.include.join(' '));
    break;
  case 'defines': {
    const defs = [`_GLIBCXX_USE_CXX11_ABI=${cxx11Abi(where.libdir)}`];
    if (hasCuda) defs.push('MMTRAIN_WITH_CUDA=1');
    console.log(defs.join(' '));
    break;
  }
  case 'ldflags': {
    const flags = [`-L${where.libdir}`, `-Wl,-rpath,${where.libdir}`];
    // --as-needed would silently drop libtorch_cuda, whose kernels register themselves at load time.
    if (hasCuda) flags.push('-Wl,--no-as-needed', '-ltorch_cuda', '-Wl,--as-needed');
    flags.push('-ltorch', '-ltorch_cpu', '-lc10');
    if (hasGloo && systemGloo && process.env.MMTRAIN_NO_DIST !== '1') flags.push(`-L${path.dirname(systemGloo)}`, '-lgloo');
    console.log(flags.join(' '));
    break;
  }
  default:
    fail(`native/libtorch.cjs: unknown query "${what}" (expected include, defines or ldflags)`);
}
