// What this build of mmtrain runs on, for `mmtrain info` and bug reports: the LibTorch it was compiled against,
// CUDA/cuDNN/NCCL as that LibTorch was built, the BLAS library actually loaded, and the CPU's bf16 support.
import { readFileSync } from 'node:fs';
import { cpuFlags, nativeBf16Flags } from '../cpu.js';
import { type CudaDevice, cudaDevices } from './device.js';
import { native } from './native.js';

/** LibTorch's build settings (at::show_config(), torch.__config__.show() in Python), parsed. */
export interface TorchConfig {
  /** "CPU capability usage": the widest vector kernels LibTorch dispatches to on this CPU (AVX2, AVX512, ...) */
  cpuCapability: string | null;
  /** BLAS_INFO: the BLAS LibTorch was built for (open, mkl, generic = whatever libblas.so.3 is) */
  blas: string | null;
  /** CUDA_VERSION and CUDNN_VERSION of a CUDA build, null otherwise */
  cuda: string | null;
  cudnn: string | null;
  /** USE_NCCL */
  nccl: boolean;
  /** every "KEY=value" of the build settings */
  settings: Record<string, string>;
}

export function parseTorchConfig(text: string): TorchConfig {
  const settings: Record<string, string> = {};
  const line = text.split('\n').find((l) => l.includes('Build settings:')) ?? '';
  const body = line.slice(line.indexOf('Build settings:') + 'Build settings:'.length);
  // values (CXX_FLAGS) hold spaces and commas of their own: split only before ", KEY="
  for (const part of body.split(/,\s+(?=[A-Z0-9_]+=)/)) {
    const eq = part.indexOf('=');
    if (eq > 0) settings[part.slice(0, eq).trim()] = part.slice(eq + 1).trim().replace(/,\s*$/, '');
  }
  const on = (v: string | undefined) => v !== undefined && /^(1|ON|TRUE|YES)$/i.test(v);
  const capability = text.match(/CPU capability usage:\s*(\S+)/);
  return {
    cpuCapability: capability ? capability[1]! : null,
    blas: settings.BLAS_INFO ?? null,
    cuda: on(settings.USE_CUDA) || settings.CUDA_VERSION ? settings.CUDA_VERSION ?? 'unknown' : null,
    cudnn: settings.CUDNN_VERSION ?? null,
    nccl: on(settings.USE_NCCL),
    settings,
  };
}

/** The BLAS libraries mapped into this process (/proc/self/maps), as paths; empty where none is a separate file. */
export function loadedBlasLibraries(maps?: string): string[] {
  let text = maps;
  if (text === undefined) {
    try {
      text = readFileSync('/proc/self/maps', 'utf8');
    } catch {
      return [];
    }
  }
  const out = new Set<string>();
  for (const l of text.split('\n')) {
    const file = l.slice(l.indexOf('/')).trim();
    if (l.includes('/') && /\/lib(open)?blas[^/]*\.so|\/libmkl_[^/]*\.so|\/libblis[^/]*\.so|\/libflexiblas[^/]*\.so/.test(file)) out.add(file);
  }
  return [...out];
}

/** One line on a BLAS library: which implementation it is, and a warning for the slow reference one. */
export function describeBlas(configured: string | null, loaded: string[]): string {
  const name = (f: string) =>
    /openblas/.test(f) ? 'OpenBLAS' : /mkl/.test(f) ? 'MKL' : /blis/.test(f) ? 'BLIS' : /flexiblas/.test(f) ? 'FlexiBLAS'
      : /\/blas\/libblas/.test(f) ? 'reference BLAS' : 'BLAS';
  if (!loaded.length) return configured === 'mkl' ? 'MKL (linked into LibTorch)' : `${configured ?? 'unknown'} (no separate library loaded)`;
  const kinds = [...new Set(loaded.map(name))];
  const slow = kinds.includes('reference BLAS') && kinds.length === 1
    ? ' -- slow: install an optimised one (Debian/Ubuntu: apt-get install libopenblas0-pthread)' : '';
  return `${kinds.join(' + ')} (${loaded.join(', ')})${slow}`;
}

export interface BuildReport {
  libtorch: string;
  cxx11Abi: boolean;
  cpu: { capability: string | null; bf16: string };
  blas: string;
  cuda: { build: string | null; linked: boolean; available: boolean; devices: number };
  /** the GPUs LibTorch sees: name, memory, compute capability */
  gpus: CudaDevice[];
  /** data-parallel training: Gloo in the build, and whether gradients can be averaged during backward */
  distributed: { gloo: boolean; overlap: boolean };
  cudnn: string | null;
  nccl: boolean;
  threads: string;
  allocator: string;
  /** which kernels conv2d runs on the CPU */
  convolution: string;
}

/** The whole picture of this build and machine (what `mmtrain info` prints). */
export function buildReport(): BuildReport {
  const b = native.buildInfo();
  const cfg = parseTorchConfig(b.config);
  const bf16 = nativeBf16Flags(cpuFlags());
  let cudnn = cfg.cudnn;
  if (b.cudnnVersion > 0) cudnn = cudnnVersionString(b.cudnnVersion);
  return {
    libtorch: b.libtorch,
    cxx11Abi: b.cxx11Abi,
    cpu: { capability: cfg.cpuCapability, bf16: bf16.length ? `native (${bf16.join(', ')})` : 'emulated (no avx512_bf16 or amx_bf16): fp32 is faster' },
    blas: describeBlas(cfg.blas, loadedBlasLibraries()),
    cuda: { build: cfg.cuda, linked: b.cudaBuild, available: b.cudaAvailable, devices: b.cudaDeviceCount },
    gpus: cudaDevices(),
    distributed: { gloo: native.distAvailable, overlap: native.distOverlapAvailable },
    cudnn,
    nccl: cfg.nccl,
    threads: threadsLine(b.parallelInfo),
    allocator: b.allocator,
    convolution: b.onednnConvolution ? 'oneDNN' : "LibTorch's own (this build's oneDNN convolution gives wrong gradients)",
  };
}

/** "2 intra-op threads, 1 inter-op, OpenMP" from at::get_parallel_info(). */
function threadsLine(parallelInfo: string): string {
  const get = (re: RegExp) => parallelInfo.match(re)?.[1];
  return `${get(/at::get_num_threads\(\)\s*:\s*(\d+)/) ?? '?'} intra-op threads, ${get(/at::get_num_interop_threads\(\)\s*:\s*(\d+)/) ?? '?'} inter-op, ` +
    `${get(/ATen parallel backend:\s*(.+)/)?.trim() ?? 'unknown backend'}`;
}

/** cuDNN's compiled-in version number (9 x 10000 + 1 x 100 + 0 from 9.1, 8 x 1000 + ... before 9) as text. */
export function cudnnVersionString(v: number): string {
  if (v >= 90000) return `${Math.floor(v / 10000)}.${Math.floor((v % 10000) / 100)}.${v % 100}`;
  return `${Math.floor(v / 1000)}.${Math.floor((v % 1000) / 100)}.${v % 100}`;
}
