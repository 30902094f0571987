// `mmtrain launch`: starts N mmtrain processes on this node with the torchrun environment (RANK, LOCAL_RANK,
// WORLD_SIZE, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT), forwards Ctrl-C to them, and stops them all when one
// fails: the others see the lost peer themselves within the timeout, and are killed after a grace period.
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface LaunchOptions {
  nproc: number;
  nnodes?: number;
  nodeRank?: number;
  masterAddr?: string;
  /** default: 29500 with several nodes, a free port on one node */
  masterPort?: number;
  /** intra-op threads per process (default: cores / nproc) */
  threads?: number;
  /** after the first failure, how long the others get to stop by themselves */
  graceS?: number;
  /** the mmtrain command line each process runs, e.g. ['train', '--config', 'f.yaml'] */
  args: string[];
  print?: (line: string) => void;
}

const CLI = fileURLToPath(new URL('./main.js', import.meta.url));

export function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.once('error', rej);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => res(port));
    });
  });
}

/** Runs the processes; resolves with the exit code (0 when every rank succeeded, else the first failure's). */
export async function launch(o: LaunchOptions): Promise<number> {
  const print = o.print ?? ((l: string) => process.stderr.write(`${l}\n`));
  const nnodes = o.nnodes ?? 1;
  const nodeRank = o.nodeRank ?? 0;
  const world = o.nproc * nnodes;
  const masterAddr = o.masterAddr ?? '127.0.0.1';
  const masterPort = o.masterPort ?? (nnodes > 1 ? 29500 : await freePort());
  // one machine: the ranks meet in a file store, so no rendezvous server listens on the network
  const storeDir = nnodes === 1 ? mkdtempSync(join(tmpdir(), 'mmtrain-launch-')) : null;
  const threads = o.threads ?? Math.max(1, Math.floor(availableParallelism() / o.nproc));
  print(`mmtrain launch: ranks ${nodeRank * o.nproc}..${nodeRank * o.nproc + o.nproc - 1} of ${world} on this node, ${threads} thread(s) each, rendezvous ${storeDir ? 'through a local file store' : `${masterAddr}:${masterPort}`}`);
  const children: ChildProcess[] = [];
  let firstFailure: { rank: number; code: number } | null = null;
  let killTimer: NodeJS.Timeout | null = null;
  const exits = [];
  for (let local = 0; local < o.nproc; local++) {
    const rank = nodeRank * o.nproc + local;
    const env = {
      ...process.env, RANK: String(rank), LOCAL_RANK: String(local), WORLD_SIZE: String(world), LOCAL_WORLD_SIZE: String(o.nproc),
      GROUP_RANK: String(nodeRank), MASTER_ADDR: masterAddr, MASTER_PORT: String(masterPort),
      ...(storeDir ? { MMTRAIN_STORE_FILE: join(storeDir, 'store') } : {}),
    };
    // own process group: a terminal Ctrl-C reaches the launcher only, which forwards it once to every rank
    const child = spawn(process.execPath, [CLI, '--threads', String(threads), ...o.args], { env, detached: true, stdio: ['ignore', rank === 0 ? 'inherit' : 'ignore', 'pipe'] });
    children.push(child);
    let partial = '';
    child.stderr!.on('data', (d: Buffer) => {
      const lines = (partial + d.toString()).split('\n');
      partial = lines.pop()!;
      for (const l of lines) process.stderr.write(`[rank ${rank}] ${l}\n`);
    });
    exits.push(new Promise<void>((res) => {
      child.on('close', (code, sig) => {
        if (partial) process.stderr.write(`[rank ${rank}] ${partial}\n`);
        const c = code ?? (sig === 'SIGINT' ? 130 : 1);
        if (c !== 0 && !firstFailure) {
          firstFailure = { rank, code: c };
          print(`mmtrain launch: rank ${rank} exited with ${sig ?? `code ${c}`}; stopping the other ranks (killed after ${o.graceS ?? 30} s)`);
          killTimer = setTimeout(() => { for (const ch of children) if (ch.exitCode === null && ch.signalCode === null) ch.kill('SIGKILL'); }, (o.graceS ?? 30) * 1000);
          for (const ch of children) if (ch !== child && ch.exitCode === null) ch.kill('SIGTERM');
        }
        res();
      });
    }));
  }
  let interrupts = 0;
  const onSigint = () => {
    interrupts++;
    for (const ch of children) if (ch.exitCode === null) ch.kill(interrupts === 1 ? 'SIGINT' : 'SIGKILL');
  };
  const onTerm = () => { for (const ch of children) if (ch.exitCode === null) ch.kill('SIGTERM'); };
  const onExit = () => { for (const ch of children) if (ch.exitCode === null) ch.kill('SIGKILL'); };
  process.on('SIGINT', onSigint);
  process.on('SIGTERM', onTerm);
  process.on('exit', onExit);
  await Promise.all(exits);
  process.off('SIGINT', onSigint);
  process.off('SIGTERM', onTerm);
  process.off('exit', onExit);
  if (killTimer) clearTimeout(killTimer);
  if (storeDir) rmSync(storeDir, { recursive: true, force: true });
  const failure = firstFailure as { rank: number; code: number } | null;
  return failure ? failure.code : 0;
}
