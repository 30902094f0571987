// Console progress: a bar with ETA, loss, lr and throughput on a TTY; plain periodic lines elsewhere (CI, pipes).
import cliProgress from 'cli-progress';

export interface ProgressReporter {
  update(step: number, payload: { epoch: number; loss: number; lr: number; samplesPerS: number; gpu?: string }): void;
  /** print a line without breaking the bar */
  line(s: string): void;
  stop(): void;
}

/** "allocated / reserved GiB" of the caching allocator on one GPU, for the progress line. */
export function gpuMemoryText(m: { allocated: number; reserved: number }): string {
  return `${(m.allocated / 2 ** 30).toFixed(2)} / ${(m.reserved / 2 ** 30).toFixed(2)} GiB`;
}

export function createProgress(mode: 'auto' | 'bar' | 'lines' | 'none', total: number, start: number, print: (s: string) => void, every: number): ProgressReporter {
  const useBar = mode === 'bar' || (mode === 'auto' && Boolean(process.stdout.isTTY) && print === console.log);
  if (mode === 'none') return { update: () => {}, line: print, stop: () => {} };
  if (!useBar) {
    return {
      update: (step, p) => {
        if (step % every === 0) print(`epoch ${p.epoch} step ${step}/${total} loss ${p.loss.toFixed(4)} lr ${p.lr.toExponential(2)} ${p.samplesPerS.toFixed(1)} samples/s${p.gpu ? ` | GPU ${p.gpu}` : ''}`);
      },
      line: print,
      stop: () => {},
    };
  }
  const bar = new cliProgress.SingleBar({
    format: 'epoch {epoch} |{bar}| {value}/{total} steps | loss {loss} | lr {lr} | {sps} samples/s{gpu} | ETA {eta_formatted}',
    hideCursor: true, clearOnComplete: false, etaBuffer: 50,
  }, cliProgress.Presets.shades_classic);
  bar.start(total, start, { epoch: 0, loss: '-', lr: '-', sps: '-', gpu: '' });
  return {
    update: (step, p) => bar.update(step, { epoch: p.epoch, loss: p.loss.toFixed(4), lr: p.lr.toExponential(2), sps: p.samplesPerS.toFixed(1), gpu: p.gpu ? ` | GPU ${p.gpu}` : '' }),
    line: (s) => {
      bar.stop();
      print(s);
      bar.start(total, (bar as unknown as { value: number }).value ?? start, {});
    },
    stop: () => bar.stop(),
  };
}
