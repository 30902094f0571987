// Data-parallel training on LibTorch's c10d: the environment contract (torchrun's RANK / WORLD_SIZE / LOCAL_RANK /
// LOCAL_WORLD_SIZE / MASTER_ADDR / MASTER_PORT, or Slurm's SLURM_PROCID / SLURM_NTASKS / SLURM_LOCALID), and a
// small process-group wrapper over the native Gloo primitives.
import { MmtrainError } from '../errors.js';
import { native } from '../tensor/native.js';
import { Tensor, fromBuffer } from '../tensor/tensor.js';

/** Whether this build has c10d's Gloo process group (the addon was built with Gloo's headers). */
export function distributedAvailable(): boolean {
  return native.distAvailable;
}

export interface DistEnv {
  rank: number;
  worldSize: number;
  localRank: number;
  localWorldSize: number;
  masterAddr: string;
  masterPort: number;
  /** ranks on one machine meet in this file (set by mmtrain launch) instead of a TCP store */
  storeFile?: string;
}

function intVar(env: NodeJS.ProcessEnv, name: string): number | undefined {
  const v = env[name];
  if (v === undefined || v === '') return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new MmtrainError(`environment variable ${name}: expected a non-negative integer, received "${v}"`);
  return n;
}

/** The first host of a Slurm node list: "node[03-05,07]" -> "node03", "a,b" -> "a". */
export function firstSlurmHost(list: string): string {
  const m = /^([^,[]+)(?:\[([^\]]+)\])?/.exec(list.trim());
  if (!m) return list;
  if (!m[2]) return m[1]!;
  const first = m[2].split(',')[0]!.split('-')[0]!;
  return `${m[1]}${first}`;
}

/**
 * The distributed setting of this process, or null for a single process. torchrun-style variables win over Slurm's;
 * under Slurm, MASTER_ADDR defaults to the first host of SLURM_JOB_NODELIST and MASTER_PORT to 29500.
 */
export function distEnvFromProcess(env: NodeJS.ProcessEnv = process.env): DistEnv | null {
  let rank = intVar(env, 'RANK');
  let world = intVar(env, 'WORLD_SIZE');
  let localRank = intVar(env, 'LOCAL_RANK');
  let localWorld = intVar(env, 'LOCAL_WORLD_SIZE');
  let addr = env.MASTER_ADDR;
  if (rank === undefined && world === undefined && env.SLURM_PROCID !== undefined) {
    rank = intVar(env, 'SLURM_PROCID');
    world = intVar(env, 'SLURM_NTASKS');
    localRank = intVar(env, 'SLURM_LOCALID');
    const perNode = env.SLURM_NTASKS_PER_NODE ? Number(/^\d+/.exec(env.SLURM_NTASKS_PER_NODE)?.[0]) : undefined;
    localWorld = perNode && Number.isInteger(perNode) ? perNode : undefined;
    addr ??= env.SLURM_JOB_NODELIST ? firstSlurmHost(env.SLURM_JOB_NODELIST) : undefined;
  }
  if (world === undefined || world <= 1) return null;
  if (rank === undefined) throw new MmtrainError('WORLD_SIZE is set but RANK is not: start each process with RANK (mmtrain launch sets both)');
  if (rank >= world) throw new MmtrainError(`RANK ${rank} is not below WORLD_SIZE ${world}`);
  const port = intVar(env, 'MASTER_PORT') ?? 29500;
  if (port < 1 || port > 65535) throw new MmtrainError(`MASTER_PORT: expected a port in 1..65535, received ${port}`);
  return {
    rank, worldSize: world, localRank: localRank ?? rank, localWorldSize: localWorld ?? world,
    masterAddr: addr ?? '127.0.0.1', masterPort: port, ...(env.MMTRAIN_STORE_FILE ? { storeFile: env.MMTRAIN_STORE_FILE } : {}),
  };
}

/** See ProcessGroup.reducer. */
export interface GradientReducer {
  /**
   * Runs `backward` (from these outputs) so that it averages the gradients across ranks while it runs; a rank
   * lost meanwhile (dead, hung past the timeout) is reported as in every other collective.
   */
  backward(outputs: Tensor[], backward: () => void): void;
  dispose(): void;
}

/** A c10d Gloo process group (one per process). */
export class ProcessGroup {
  static #current: ProcessGroup | null = null;
  private constructor(readonly env: DistEnv, readonly timeoutS: number) {}

  get rank(): number { return this.env.rank; }
  get worldSize(): number { return this.env.worldSize; }

  /** Joins the group: rank 0 hosts the TCP store; the others wait for it up to the timeout. */
  static init(env: DistEnv, timeoutS = 300): ProcessGroup {
    if (!native.distAvailable) native.distInit(0, 1, '', 0, 0, null, null); // throws the "not in this build" message
    if (ProcessGroup.#current) throw new MmtrainError('a process group is already initialized in this process');
    try {
      native.distInit(env.rank, env.worldSize, env.masterAddr, env.masterPort, Math.round(timeoutS * 1000), process.env.GLOO_SOCKET_IFNAME ?? null, env.storeFile ?? null);
    } catch (e) {
      const where = env.storeFile ? `through ${env.storeFile}` : `at ${env.masterAddr}:${env.masterPort}`;
      throw new MmtrainError(`distributed: rank ${env.rank} of ${env.worldSize} could not join the process group ${where} within ${timeoutS} s: ${(e as Error).message}`);
    }
    ProcessGroup.#current = new ProcessGroup(env, timeoutS);
    return ProcessGroup.#current;
  }

  static get current(): ProcessGroup | null { return ProcessGroup.#current; }

  #wrap<T>(what: string, fn: () => T): T {
    try {
      return fn();
    } catch (e) {
      throw this.#lost(what, e);
    }
  }

  #lost(what: string, e: unknown): MmtrainError {
    return new MmtrainError(`distributed: rank ${this.rank} lost the other ranks during ${what} (a rank died, hung for over ${this.timeoutS} s, or could not be reached): ${(e as Error).message}`);
  }

  /** Whether this build has c10d's Reducer (Debian 12's LibTorch headers lack what it includes). */
  get canOverlap(): boolean { return native.distOverlapAvailable; }

  /**
   * Gradient synchronisation that overlaps backward: LibTorch's c10d Reducer (the engine of PyTorch's
   * DistributedDataParallel) over `params`, in buckets of bucketMB (the first one 1 MB, as DDP's). A backward run
   * through `backward()` averages each bucket across ranks as soon as its gradients are ready; backward passes
   * run otherwise (the earlier micro-batches of gradient accumulation) stay local.
   */
  reducer(params: Tensor[], bucketMB = 25): GradientReducer {
    const id = this.#wrap('setting up the gradient reducer', () =>
      native.distReducerNew(params.map((p) => p.handle), Math.round(bucketMB * 2 ** 20), Math.min(2 ** 20, Math.round(bucketMB * 2 ** 20)), true));
    let live = true;
    return {
      backward: (outputs, backward) => {
        this.#wrap('the gradient allreduce', () => native.distReducerPrepare(id, outputs.map((t) => t.handle)));
        try {
          backward();
        } catch (e) {
          // the reducer's collectives fail inside backward: those errors name the transport; others are backward's own
          throw /gloo|nccl|timed out|timeout|connection|peer|socket|broken pipe|pair closure|closed/i.test((e as Error).message) ? this.#lost('the gradient allreduce', e) : e;
        }
      },
      dispose: () => {
        if (live) native.distReducerFree(id);
        live = false;
      },
    };
  }

  /** Sums every parameter's gradient across ranks and multiplies by scale, in flat buckets of bucketMB. */
  allreduceGrads(params: Tensor[], scale: number, bucketMB = 25): void {
    this.#wrap('the gradient allreduce', () => native.distAllreduceGrads(params.map((p) => p.handle), Math.round(bucketMB * 2 ** 20), scale));
  }

  /** Sums numbers across ranks (float64). */
  allreduceSum(values: number[]): number[] {
    const t = fromBuffer(Float64Array.from(values), [values.length]);
    try {
      this.#wrap('an allreduce', () => native.distAllreduce(t.handle));
      return t.toNumbers();
    } finally {
      t.dispose();
    }
  }

  /** Makes every rank's tensors equal to root's. */
  broadcast(tensors: Tensor[], root = 0, bucketMB = 25): void {
    this.#wrap('a broadcast', () => native.distBroadcast(tensors.map((t) => t.handle), root, Math.round(bucketMB * 2 ** 20)));
  }

  /** Concatenates every rank's rows (rank order): rows of `width` float64 values, any count per rank. */
  gatherRows(rows: Float64Array, width: number): Float64Array {
    const count = rows.length / width;
    const counts = this.allreduceSumVector(count);
    const max = Math.max(...counts);
    const padded = new Float64Array(Math.max(1, max * width));
    padded.set(rows);
    const t = fromBuffer(padded, [padded.length]);
    try {
      const h = this.#wrap('an allgather', () => native.distAllgather(t.handle));
      const all = new Tensor(h);
      try {
        const flat = Float64Array.from(all.toNumbers());
        const out = new Float64Array(counts.reduce((a, b) => a + b, 0) * width);
        let o = 0;
        counts.forEach((c, r) => {
          out.set(flat.subarray(r * padded.length, r * padded.length + c * width), o);
          o += c * width;
        });
        return out;
      } finally {
        all.dispose();
      }
    } finally {
      t.dispose();
    }
  }

  /** Each rank's value, in rank order. */
  allreduceSumVector(value: number): number[] {
    const v = new Array<number>(this.worldSize).fill(0);
    v[this.rank] = value;
    return this.allreduceSum(v);
  }

  barrier(): void {
    this.#wrap('a barrier', () => native.distBarrier());
  }

  /** Rank 0 publishes a value under key; every rank returns it. */
  share(key: string, value: string | (() => string)): string {
    if (this.rank === 0) native.distStoreSet(key, typeof value === 'function' ? value() : value);
    return this.#wrap(`the exchange of "${key}"`, () => native.distStoreGet(key));
  }

  destroy(): void {
    native.distDestroy();
    ProcessGroup.#current = null;
  }
}
