// One fusion fwd+bwd measurement in a fresh process, so that OpenMP's waiting policy can be the one a training run
// of that precision gets from the CLI (bf16: GOMP_SPINCOUNT=10000, see src/cli/threading.ts).
// node dist/bench/fusion-child.js PRESET BATCH TOKENS WARMUP STEPS fp32|bf16 THREADS
import { setNumThreads } from '../src/index.js';
import { fusionStep, peakRssMiB } from './blocks.js';

const [preset, B, T, warmup, steps, precision, threads] = process.argv.slice(2);
setNumThreads(Number(threads));
const r = fusionStep(preset!, Number(B), Number(T), Number(warmup), Number(steps), precision === 'bf16');
// peak resident memory of this whole process, as the PyTorch side reports its own
console.log(JSON.stringify({ ...r, peak_rss_mib: peakRssMiB() }));
