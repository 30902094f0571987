// The matrix-multiply rate in a fresh process, with the OpenMP waiting a training run of that precision gets.
// node dist/bench/matmul-child.js float32|bfloat16 THREADS
import { setNumThreads } from '../src/index.js';
import { matmulRate } from './blocks.js';

const [dtype, threads] = process.argv.slice(2);
setNumThreads(Number(threads));
console.log(JSON.stringify(matmulRate(dtype === 'bfloat16' ? 'bfloat16' : 'float32')));
