// How the bench starts its child processes: each side with the OpenMP waiting that a run of that precision gets.
import { execFileSync } from 'node:child_process';
import { tuneThreadWaiting } from '../src/cli/threading.js';

/** The environment without the OMP_WAIT_POLICY mmtrain set for this process (a user's own value is kept). */
export function torchDefaultEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  if (env.MMTRAIN_USER_OMP_WAIT_POLICY === undefined) delete env.OMP_WAIT_POLICY;
  return env;
}

/** The environment a fresh `mmtrain train` process of this precision gets from the CLI (src/cli/threading.ts). */
export function cliEnv(precision: 'fp32' | 'bf16'): NodeJS.ProcessEnv {
  const env = torchDefaultEnv(); // without the PASSIVE this process set for itself, as a fresh CLI process starts
  tuneThreadWaiting(precision, env);
  return env;
}

/** Runs a command and parses the JSON object on the last line of its stdout; stderr passes through. */
export function runJson(cmd: string, args: string[], env: NodeJS.ProcessEnv): any {
  const out = execFileSync(cmd, args, { encoding: 'utf8', env, stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 26 });
  return JSON.parse(out.trim().split('\n').pop()!);
}
