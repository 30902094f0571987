// `mmtrain info`: the build report's parsing of LibTorch's configuration text (as LibTorch 1.13, Debian 13's 2.6
// and a pip CUDA wheel print it), the BLAS detection from /proc/self/maps, and the command itself.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { buildInfo, buildReport, describeBlas, loadedBlasLibraries, parseTorchConfig } from '../src/index.js';
import { cudnnVersionString } from '../src/tensor/build-info.js';
import { nativeBf16Flags } from '../src/cpu.js';
import { ROOT } from './helpers.js';
import { addonMissing } from '../src/addon-path.js';

const CLI = join(ROOT, 'dist', 'src', 'cli', 'main.js');

// Debian 12's libtorch-dev 1.13 (CPU), abridged CXX_FLAGS
const DEBIAN12 = `PyTorch built with:
  - GCC 12.2
  - C++ Version: 201402
  - Intel(R) MKL-DNN v2.6.3 (Git Hash N/A)
  - OpenMP 201511 (a.k.a. OpenMP 4.5)
  - LAPACK is enabled (usually provided by MKL)
  - CPU capability usage: AVX2
  - Build settings: BLAS_INFO=generic, BUILD_TYPE=RelWithDebInfo, CXX_COMPILER=/usr/bin/c++, CXX_FLAGS=-Wdate-time -D_FORTIFY_SOURCE=2 -g -O2 -fopenmp -DUSE_PYTORCH_QNNPACK -Wno-stringop-overflow, LAPACK_INFO=generic, PERF_WITH_AVX=1, PERF_WITH_AVX2=1, PERF_WITH_AVX512=1, TORCH_VERSION=1.13.0, USE_CUDA=OFF, USE_CUDNN=OFF, USE_EXCEPTION_PTR=1, USE_GFLAGS=ON, USE_GLOG=ON, USE_MKLDNN=ON, USE_MPI=OFF, USE_NCCL=OFF, USE_NNPACK=OFF, USE_OPENMP=ON, USE_ROCM=OFF, 
`;

// a pip CUDA wheel (2.5, cu124), abridged
const PIP_CUDA = `PyTorch built with:
  - GCC 9.3
  - C++ Version: 201703
  - Intel(R) oneAPI Math Kernel Library Version 2024.2-Product Build 20240605 for Intel(R) 64 architecture applications
  - Intel(R) MKL-DNN v3.5.3 (Git Hash 66f0cb9eb66affd2da3bf5f8d897376f04aae6af)
  - OpenMP 201511 (a.k.a. OpenMP 4.5)
  - CPU capability usage: AVX512
  - CUDA Runtime 12.4
  - CuDNN 90.1  (built against CUDA 12.4)
  - Build settings: BLAS_INFO=mkl, BUILD_TYPE=Release, CUDA_VERSION=12.4, CUDNN_VERSION=9.1.0, CXX_COMPILER=/opt/rh/devtoolset-9/root/usr/bin/c++, CXX_FLAGS= -D_GLIBCXX_USE_CXX11_ABI=0 -fabi-version=11 -O2 -fPIC, LAPACK_INFO=mkl, TORCH_VERSION=2.5.1, USE_CUDA=ON, USE_CUDNN=ON, USE_GLOO=ON, USE_MKL=ON, USE_MKLDNN=ON, USE_MPI=OFF, USE_NCCL=1, USE_OPENMP=ON, USE_ROCM=OFF, 
`;

test('LibTorch build settings are parsed from CPU and CUDA builds alike', () => {
  const d = parseTorchConfig(DEBIAN12);
  assert.equal(d.cpuCapability, 'AVX2');
  assert.equal(d.blas, 'generic');
  assert.equal(d.cuda, null);
  assert.equal(d.cudnn, null);
  assert.equal(d.nccl, false);
  assert.equal(d.settings.TORCH_VERSION, '1.13.0');
  // CXX_FLAGS keeps its spaces and is not split at its own commas or options
  assert.match(d.settings.CXX_FLAGS!, /^-Wdate-time .* -Wno-stringop-overflow$/);
  const c = parseTorchConfig(PIP_CUDA);
  assert.deepEqual([c.cpuCapability, c.blas, c.cuda, c.cudnn, c.nccl], ['AVX512', 'mkl', '12.4', '9.1.0', true]);
  assert.equal(c.settings.USE_ROCM, 'OFF');
  // this build's own text parses to what it is
  const own = parseTorchConfig(buildInfo().config);
  assert.equal(own.settings.TORCH_VERSION?.split('.').slice(0, 2).join('.'), buildInfo().libtorch.split('.').slice(0, 2).join('.'));
  assert.equal(own.cuda !== null, buildInfo().cudaBuild, 'a CUDA LibTorch is linked exactly when its settings say CUDA');
});

test('the BLAS library in use is read from the process map, and the reference BLAS is flagged', () => {
  const maps = [
    '7f01-7f02 r-xp 00000000 fe:01 123 /usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblasp-r0.3.21.so',
    '7f03-7f04 r--p 00000000 fe:01 124 /usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3',
    '7f05-7f06 r-xp 00000000 fe:01 125 /usr/lib/x86_64-linux-gnu/libtorch_cpu.so.1.13',
    '7f07-7f08 rw-p 00000000 00:00 0 [heap]',
  ].join('\n');
  assert.deepEqual(loadedBlasLibraries(maps), ['/usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblasp-r0.3.21.so', '/usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3']);
  assert.match(describeBlas('generic', loadedBlasLibraries(maps)), /^OpenBLAS \(/);
  const reference = loadedBlasLibraries('7f01-7f02 r-xp 00000000 fe:01 9 /usr/lib/x86_64-linux-gnu/blas/libblas.so.3.11.0');
  assert.match(describeBlas('generic', reference), /^reference BLAS .* slow: install .*libopenblas0-pthread/);
  assert.equal(describeBlas('mkl', []), 'MKL (linked into LibTorch)');
  // this process has loaded LibTorch, so its BLAS is mapped (Debian) or linked in (pip, zips)
  const r = buildReport();
  assert.ok(r.blas.length > 0);
});

test('bf16 support and cuDNN versions read as users know them', () => {
  assert.deepEqual(nativeBf16Flags(['fpu', 'avx2', 'avx512_bf16', 'amx_bf16', 'amx_tile']), ['avx512_bf16', 'amx_bf16']);
  assert.deepEqual(nativeBf16Flags(['fpu', 'avx2', 'avx512f']), []);
  assert.equal(cudnnVersionString(90100), '9.1.0');
  assert.equal(cudnnVersionString(8907), '8.9.7');
});

test('mmtrain info prints the LibTorch version, CUDA, cuDNN, NCCL, BLAS and the CPU\'s bf16 support', () => {
  const text = execFileSync(process.execPath, [CLI, 'info'], { encoding: 'utf8' });
  const info = buildInfo();
  assert.match(text, new RegExp(`^LibTorch\\s+${info.libtorch.replace(/\./g, '\\.')} `, 'm'));
  for (const row of ['CUDA', 'cuDNN', 'NCCL', 'parallel', 'BLAS', 'CPU', 'threads', 'conv2d']) assert.match(text, new RegExp(`^${row}\\s+\\S`, 'm'), row);
  assert.match(text, /^CPU\s+\S+ kernels; bf16 (native|emulated)/m);
  const json = JSON.parse(execFileSync(process.execPath, [CLI, 'info', '--json'], { encoding: 'utf8' })) as Record<string, unknown>;
  assert.equal(json.libtorch, info.libtorch);
  assert.deepEqual(Object.keys(json.cuda as object).sort(), ['available', 'build', 'devices', 'linked']);
  assert.match(json.torchConfig as string, /Build settings:/);
});

test('a missing addon: in a checkout, build it; installed as a dependency, approve its install script (npm 11.19 and later)', () => {
  assert.match(addonMissing('mmtrain_native', 'It needs LibTorch.', '/home/me/mmtrain'), /^mmtrain: the native addon build\/Release\/mmtrain_native\.node was not found in \/home\/me\/mmtrain\. Run `npm run build` there\. It needs LibTorch\.$/);
  const dep = addonMissing('mmtrain_image', 'x', '/srv/app/node_modules/mmtrain');
  assert.match(dep, /^mmtrain: the image addon build\/Release\/mmtrain_image\.node was not found in \/srv\/app\/node_modules\/mmtrain\./);
  assert.match(dep, /npm install-scripts approve mmtrain && npm rebuild mmtrain/);
  assert.match(dep, /"allowScripts": \{ "mmtrain": true \}/);
  assert.doesNotMatch(dep, /npm run build/);
});
