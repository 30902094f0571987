// The SIGKILL soak: `npm run soak -- [--trials 20] [--seed 1] [--steps 60]`. Each trial kills a training run at random moments
// (up to twice), resumes it until it finishes, checks that every checkpoint on disk loads after every kill, and
// compares the final weights with an uninterrupted run, bit for bit.
import { faultSetup, killResumeTrial, prng } from '../test/fault-harness.js';

const arg = (name: string, def: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
};
const trials = arg('trials', 20);
const seed = arg('seed', 1);
const s = await faultSetup(arg('steps', 60));
console.log(`reference run: ${(s.referenceMs / 1000).toFixed(1)} s; ${trials} trials, seed ${seed}`);
const rnd = prng(seed);
let failed = 0;
let kills = 0;
let checks = 0;
let done = 0;
// a trial counts once a kill landed in it (a kill timer can fire after a short run already finished)
for (let i = 1; done < trials && i <= trials * 3; i++) {
  const r = await killResumeTrial(s, rnd);
  kills += r.kills;
  checks += r.checkpointsChecked;
  if (r.kills > 0) done++;
  if (!r.identical) failed++;
  console.log(`trial ${i}: ${r.kills} kill(s), ${r.resumes} resume(s), ${r.checkpointsChecked} checkpoint loads, final weights ${r.identical ? 'identical' : 'DIFFERENT'}`);
}
console.log(`${done} trials with kills (${kills} kills, ${checks} checkpoint loads): ${failed ? `${failed} FAILED` : 'every final result identical to the uninterrupted run, every checkpoint loadable'}`);
process.exit(failed || done < trials ? 1 : 0);
