// The mmtrain command line: its commands and options. Importing this module loads no LibTorch: a command loads it
// when it runs, after setting OpenMP's thread waiting for the run's precision (threading.ts; libgomp reads it once,
// at load), so `train` reads its config with the real loader first. Options with a fixed set of values use
// commander's choices and numbers an argParser, so a bad value's error names the option, the value and what it takes.
import { Command, InvalidArgumentError, Option } from 'commander';
import { existsSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { writeFileAtomic } from '../files.js';
import { generateSynthetic } from '../data/synth.js';
import { EXAMPLE_CONFIG, loadConfig } from '../train/config.js';
import type { StudySpec } from '../train/study.js';
import { BUILTIN_STUDIES } from '../train/studies.js';
import { DEMO_SAMPLES } from './demo.js';
import { onCtrlC } from './interrupts.js';
import { launch } from './launch.js';
import { preferredPrecision, tuneThreadWaiting } from './threading.js';

const PRECISIONS = ['fp32', 'bf16'] as const;
/** --device of demo, eval and predict (checked when LibTorch is loaded: resolveDevice) */
const deviceOption = () => new Option('--device <d>', 'auto (the first GPU LibTorch sees, else cpu), cpu, cuda or cuda:N').default('auto');
const DIFFICULTIES = ['easy', 'medium', 'hard'] as const;
const TASKS = ['match', 'imbalanced'] as const;

/** An argParser for integers from `min` up (commander's message names the option and the value received). */
function integer(min: number) {
  return (v: string): number => {
    const n = Number(v);
    if (v.trim() === '' || !Number.isInteger(n) || n < min) throw new InvalidArgumentError(`Expected ${min === 1 ? 'a positive integer' : `an integer >= ${min}`}.`);
    return n;
  };
}
const positiveInt = integer(1);
const nonNegativeInt = integer(0);

function seedList(v: string): number[] {
  const parts = v.split(',').map((x) => x.trim());
  if (parts.some((x) => x === '' || !Number.isInteger(Number(x)) || Number(x) < 0)) throw new InvalidArgumentError('Expected comma-separated non-negative integers, e.g. 1,2,3.');
  return parts.map(Number);
}

function collect(v: string, prev: string[]): string[] {
  return [...prev, v];
}

/** The mmtrain program; main.ts parses the command line with it. */
export const program = new Command();
program.enablePositionalOptions();
program.name('mmtrain').description('Image-text joint training on LibTorch, with convergence diagnostics').version('0.1.0');
program.option('--threads <n>', 'intra-op threads (default: all cores)', positiveInt);

/** Loads LibTorch (call it once the command has set OpenMP's thread waiting) and applies --threads. */
async function loadTorch() {
  const threads = program.opts().threads as number | undefined;
  // LibTorch's thread setting reaches OpenMP, not OpenBLAS's own pthreads (fp32 matmuls), which size themselves
  // from the environment when the library loads: --threads caps them too (unless the user set it), so that the
  // ranks of `mmtrain launch` do not each run a pool of all the cores
  if (threads && process.env.OPENBLAS_NUM_THREADS === undefined) process.env.OPENBLAS_NUM_THREADS = String(threads);
  const torch = await import('../tensor/modes.js');
  if (threads) torch.setNumThreads(threads);
  return torch;
}

program
  .command('demo')
  .description('synthesize the built-in image-text data set, train the tiny preset on it, evaluate on test (no download)')
  .option('--out <dir>', 'folder for the data and the run directory', 'runs')
  .option('--n <count>', 'samples to synthesize', positiveInt, DEMO_SAMPLES)
  .option('--epochs <n>', 'training epochs (default: 27 in bf16, 15 in fp32)', positiveInt)
  .addOption(new Option('--precision <p>', 'default: bf16 where the CPU has it natively').choices(PRECISIONS))
  .addOption(new Option('--difficulty <level>', 'how hard the task is').choices(DIFFICULTIES).default('easy'))
  .option('--seed <n>', 'random seed', positiveInt, 1)
  .addOption(new Option('--text-encoder <arch>', 'the text encoder\'s architecture (tiny, random init)').choices(['bert', 'distilbert', 'roberta', 'clip', 'siglip']).default('bert'))
  .addOption(new Option('--image-encoder <arch>', 'the image encoder\'s architecture (tiny, random init)').choices(['vit', 'deit', 'clip', 'siglip']).default('vit'))
  .addOption(deviceOption())
  .action(async (o: { out: string; n: number; epochs?: number; precision?: 'fp32' | 'bf16'; difficulty: 'easy' | 'medium' | 'hard'; seed: number; device: string; textEncoder: 'bert' | 'distilbert' | 'roberta' | 'clip' | 'siglip'; imageEncoder: 'vit' | 'deit' | 'clip' | 'siglip' }) => {
    const precision = o.precision ?? preferredPrecision();
    tuneThreadWaiting(precision);
    const { buildInfo, getNumThreads } = await loadTorch();
    const { runDemo } = await import('./demo.js');
    console.log(`mmtrain demo: LibTorch ${buildInfo().libtorch}, ${getNumThreads()} threads; task: does the caption match the image?`);
    const ac = new AbortController();
    process.on('SIGINT', onCtrlC(ac));
    const r = await runDemo({ ...o, precision, signal: ac.signal });
    const acc = r.test ? `${(r.test.accuracy * 100).toFixed(1)}%` : 'n/a';
    console.log(`test accuracy: ${acc} on ${r.test?.n ?? 0} pairs (chance 50%) after ${r.steps} steps in ${Math.round(r.wallS)} s`);
    console.log(`run directory: ${r.runDir} (config.json, metrics.jsonl, tensorboard/, checkpoints/, best/, test_metrics.json)`);
  });

program
  .command('synth')
  .description('write the built-in synthetic image-text data set (JPEG images, train/val/test JSONL manifests)')
  .requiredOption('--out <dir>', 'output folder')
  .option('--n <count>', 'samples in all', positiveInt, 4000)
  .option('--seed <n>', 'random seed', positiveInt, 1)
  .addOption(new Option('--task <task>', 'which task the labels pose').choices(TASKS).default('match'))
  .addOption(new Option('--difficulty <level>', 'how hard the task is').choices(DIFFICULTIES).default('easy'))
  .option('--image-size <px>', 'rendered image side', positiveInt, 64)
  .action(async (o: { out: string; n: number; seed: number; task: 'match' | 'imbalanced'; difficulty: 'easy' | 'medium' | 'hard'; imageSize: number }) => {
    const t0 = performance.now();
    const r = await generateSynthetic(o);
    console.log(`wrote ${o.n} samples (${o.task}, ${o.difficulty}, ${o.imageSize}px) to ${o.out}: train ${r.train.length}, val ${r.val.length}, test ${r.test.length} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  });

program
  .command('convert')
  .description('write a data set (manifest, Parquet files or WebDataset shards) as Parquet files or WebDataset shards')
  .argument('<data>', 'a manifest (.jsonl, .csv), Parquet files or .tar shards: a path, a glob or a brace range (quote it)')
  .addOption(new Option('--to <format>', 'output format').choices(['parquet', 'webdataset'] as const).makeOptionMandatory())
  .requiredOption('--out <dir>', 'output folder')
  .option('--prefix <name>', 'output file names: <prefix>-000000.parquet / .tar (default: the input file\'s name)')
  .option('--shard-size <n>', 'samples per output file', positiveInt, 1000)
  .option('--row-group-size <n>', 'Parquet: rows per row group (datasets uses 100 for images)', positiveInt, 100)
  .addOption(new Option('--compression <codec>', 'Parquet page compression of the text and label').choices(['snappy', 'none'] as const).default('snappy'))
  .addOption(new Option('--image-compression <codec>', 'Parquet page compression of the images (none, as datasets stores them: encoded images do not compress, and mmtrain then reads each in place)').choices(['none', 'snappy'] as const).default('none'))
  .option('--labels <names>', 'class names in index order, comma-separated (default: from the data)')
  .option('--image-column <name>', 'Parquet column / WebDataset field holding the image')
  .option('--text-column <name>', 'Parquet column / WebDataset field holding the text')
  .option('--label-column <name>', 'Parquet column / WebDataset field holding the label')
  .addOption(new Option('--on-bad-sample <policy>', 'a record that cannot be read: stop with its name, or leave it out and count it').choices(['error', 'skip'] as const).default('error'))
  .action(async (data: string, o: { to: 'parquet' | 'webdataset'; out: string; prefix?: string; shardSize: number; rowGroupSize: number; compression: 'snappy' | 'none'; imageCompression: 'snappy' | 'none'; labels?: string; imageColumn?: string; textColumn?: string; labelColumn?: string; onBadSample: 'error' | 'skip' }) => {
    const { openDataset } = await import('../data/dataset.js');
    const { convertDataset } = await import('../data/convert.js');
    const t0 = performance.now();
    const columns = { image: o.imageColumn, text: o.textColumn, label: o.labelColumn };
    const d = await openDataset('<data>', data, { labels: o.labels?.split(',').map((s) => s.trim()), onBadSample: o.onBadSample, label: 'optional', columns, print: console.log });
    const prefix = o.prefix ?? (data.split('/').pop()!.replace(/\.[^.]*$/, '').replace(/[-_]?(\{[^}]*\}|\*|\d+)$/, '') || 'data');
    const r = await convertDataset(d, { to: o.to, out: o.out, prefix, shardSize: o.shardSize, rowGroupSize: o.rowGroupSize, compression: o.compression, imageCompression: o.imageCompression, onBadSample: o.onBadSample, print: console.log });
    for (const p of [...d.skipped, ...r.skipped].slice(0, 10)) console.log(`left out ${p.where}: ${p.message}`);
    const left = d.skipped.length + r.skipped.length;
    console.log(`wrote ${r.samples} samples to ${r.files.length} ${o.to === 'parquet' ? 'Parquet file' : 'shard'}${r.files.length === 1 ? '' : 's'} in ${((performance.now() - t0) / 1000).toFixed(1)} s${left ? ` (left out ${left} bad record${left === 1 ? '' : 's'})` : ''}; classes: ${d.labels.join(', ')}`);
    console.log(`use it as data.train (or val, test): "${r.pattern}"`);
  });

program
  .command('train')
  .description('train a fusion classifier from a config file (JSON or YAML)')
  .requiredOption('--config <file>', 'configuration file (mmtrain init writes an example)')
  .option('--set <key=value>', 'override a config key, e.g. --set train.lr=3e-4 (repeatable)', collect, [])
  .option('--resume <runDir>', 'continue a run from its newest checkpoint')
  .option('--run-dir <dir>', 'write the run to this directory instead of out/name')
  .action(async (o: { config: string; set: string[]; resume?: string; runDir?: string }) => {
    // a resumed run without the config file reads its own config.json
    const config = o.resume && !existsSync(o.config) ? loadConfig(join(o.resume, 'config.json'), o.set) : loadConfig(o.config, o.set);
    tuneThreadWaiting(config.train.precision);
    await loadTorch();
    const { train } = await import('../train/trainer.js');
    const ac = new AbortController();
    const onSigint = onCtrlC(ac);
    process.on('SIGINT', onSigint);
    const r = await train(config, { resume: o.resume, runDir: o.runDir, signal: ac.signal });
    process.off('SIGINT', onSigint);
    const { reportTrainedRun } = await import('../diagnostics/report.js');
    await reportTrainedRun(r, config);
    console.log(JSON.stringify({ runDir: r.runDir, steps: r.steps, epochs: r.epochs, best: r.best, test: r.test && { accuracy: r.test.accuracy, macro_f1: r.test.macro_f1, auroc: r.test.auroc }, interrupted: r.interrupted, wall_s: Math.round(r.wallS) }));
  });

program
  .command('pretrain')
  .description('pretrain one encoder: BERT masked language modelling on texts, or ViT masked image modelling on images; writes a Hugging Face folder')
  .addOption(new Option('--modality <m>', 'which encoder').choices(['text', 'image'] as const).makeOptionMandatory())
  .requiredOption('--data <path>', 'text: .txt files (one text per line) or a manifest\'s texts; image: a manifest (.jsonl, .csv), Parquet files or shards')
  .requiredOption('--out <dir>', 'output folder: the model (config.json, model.safetensors, tokenizer or preprocessor config) and run/')
  .option('--val <path>', 'held-out data: validation loss (and masked-token accuracy) each epoch')
  .option('--config <file>', 'a run configuration (model, data, train, ... as for train) the options below override')
  .option('--preset <name>', 'the encoder preset (e.g. bert-tiny, vit-tiny; default: the config\'s, else the tiny pair\'s)')
  .option('--from <dir>', 'continue pretraining a local BERT / ViT folder (domain-adaptive pretraining)')
  .option('--epochs <n>', 'epochs', positiveInt)
  .option('--lr <x>', 'peak learning rate', Number)
  .option('--batch <n>', 'batch size', positiveInt)
  .option('--whole-word', 'text: mask whole words')
  .option('--probe <manifest>', 'labelled manifest: linear-probe accuracy of the encoder at the start and each validation (repeatable)', collect, [])
  .option('--seed <n>', 'random seed', nonNegativeInt)
  .option('--set <key=value>', 'override a config key, e.g. --set pretrain.maskRatio=0.5 (repeatable)', collect, [])
  .option('--resume', 'continue the interrupted pretraining in --out')
  .action(async (o: { modality: 'text' | 'image'; data: string; out: string; val?: string; config?: string; preset?: string; from?: string; epochs?: number; lr?: number; batch?: number; wholeWord?: boolean; probe: string[]; seed?: number; set: string[]; resume?: boolean }) => {
    const { pretrainConfig, pretrain } = await import('../train/pretrain.js');
    const { readConfigFile } = await import('../train/config.js');
    const base = o.config ? readConfigFile(o.config) : undefined;
    const config = pretrainConfig({
      modality: o.modality, data: o.data, val: o.val, out: o.out, base, baseDir: o.config ? dirname(resolve(o.config)) : process.cwd(), preset: o.preset, from: o.from,
      epochs: o.epochs, lr: o.lr, batchSize: o.batch, wholeWordMask: o.wholeWord, probe: o.probe, seed: o.seed, set: o.set,
    });
    tuneThreadWaiting(config.train.precision);
    await loadTorch();
    const ac = new AbortController();
    const onSigint = onCtrlC(ac);
    process.on('SIGINT', onSigint);
    const r = await pretrain(config, o.out, { resume: o.resume, signal: ac.signal });
    process.off('SIGINT', onSigint);
    const { reportTrainedRun } = await import('../diagnostics/report.js');
    await reportTrainedRun(r, config);
    if (r.modelDir) console.log(`pretrained ${o.modality === 'text' ? 'BertForMaskedLM' : 'ViTForMaskedImageModeling'} written to ${r.modelDir}; use it as model.${o.modality}.pretrained (it loads as ${o.modality === 'text' ? 'BertModel' : 'ViTModel'})`);
    console.log(JSON.stringify({ modelDir: r.modelDir, runDir: r.runDir, steps: r.steps, epochs: r.epochs, val: r.finalVal && { loss: r.finalVal.loss, accuracy: r.finalVal.accuracy }, interrupted: r.interrupted, wall_s: Math.round(r.wallS) }));
  });

program
  .command('probe')
  .description('linear-probe accuracy of one encoder of a model folder (a checkpoint, or a pretrained encoder) on a labelled manifest; prints JSON')
  .requiredOption('--model <dir>', 'a checkpoint directory, or an encoder folder (mmtrain pretrain\'s output, a BertModel / ViTModel folder)')
  .addOption(new Option('--modality <m>', 'which encoder').choices(['text', 'image'] as const).makeOptionMandatory())
  .requiredOption('--data <manifest>', 'labelled JSONL or CSV manifest')
  .option('--batch <n>', 'batch size', positiveInt, 64)
  .addOption(deviceOption())
  .action(async (o: { model: string; modality: 'text' | 'image'; data: string; batch: number; device: string }) => {
    await loadTorch();
    const { probeModel } = await import('../train/probe-run.js');
    console.log(JSON.stringify(await probeModel(o.model, o.modality, o.data, { batchSize: o.batch, device: o.device })));
  });

program
  .command('launch')
  .description('data-parallel training: start --nproc processes on this node (torchrun environment) running the command after --')
  .requiredOption('--nproc <n>', 'processes on this node', positiveInt)
  .option('--nnodes <n>', 'nodes in all', positiveInt, 1)
  .option('--node-rank <r>', 'this node\'s index (0 hosts the rendezvous)', nonNegativeInt, 0)
  .option('--master-addr <host>', 'address of node 0', '127.0.0.1')
  .option('--master-port <port>', 'rendezvous port (default: 29500 with several nodes, a free port on one)', positiveInt)
  .option('--grace <s>', 'after a rank fails, seconds before the others are killed', positiveInt, 30)
  .argument('<command...>', 'the mmtrain command each process runs, e.g. -- train --config f.yaml')
  .passThroughOptions()
  .action(async (command: string[], o: { nproc: number; nnodes: number; nodeRank: number; masterAddr: string; masterPort?: number; grace: number }, cmd: Command) => {
    if (o.nodeRank >= o.nnodes) throw new InvalidArgumentError(`--node-rank ${o.nodeRank} must be below --nnodes ${o.nnodes}`);
    const threads = cmd.parent?.opts().threads as number | undefined;
    const code = await launch({ ...o, graceS: o.grace, threads, args: command });
    process.exit(code);
  });

program
  .command('study')
  .description('run a grid of config overrides x seeds and aggregate it (resumable: finished runs are skipped)')
  .option('--config <file>', 'study file (YAML or JSON)')
  .addOption(new Option('--builtin <name>', 'a built-in study').choices(Object.keys(BUILTIN_STUDIES)))
  .option('--out <dir>', 'folder for the study directory (default: the study\'s out, "studies")')
  .option('--parallel <n>', 'runs at a time, as separate processes', positiveInt)
  .option('--seeds <list>', 'comma-separated seeds (overrides the study\'s)', seedList)
  .option('--no-report', 'skip report.html')
  .action(async (o: { config?: string; builtin?: string; out?: string; parallel?: number; seeds?: number[]; report: boolean }) => {
    if (Boolean(o.config) === Boolean(o.builtin)) throw new Error('give --config FILE or --builtin NAME');
    // each run is a child process, an `mmtrain train` that sets its own thread waiting
    const { loadStudy, parseStudy, runStudy, studyTable } = await import('../train/study.js');
    const { writeStudyReport } = await import('../diagnostics/report.js');
    let loaded: { spec: StudySpec; baseDir: string };
    if (o.builtin) {
      loaded = { spec: parseStudy(BUILTIN_STUDIES[o.builtin]!(), `built-in study ${o.builtin}`), baseDir: process.cwd() };
    } else {
      loaded = loadStudy(o.config!);
    }
    if (o.seeds) loaded.spec.seeds = o.seeds;
    const ac = new AbortController();
    const onSigint = () => {
      console.error('\ninterrupt: the running trainings checkpoint and stop; run the same command again to resume');
      ac.abort();
    };
    process.on('SIGINT', onSigint);
    const t0 = performance.now();
    const s = await runStudy(loaded.spec, loaded.baseDir, { parallel: o.parallel, out: o.out, signal: ac.signal });
    process.off('SIGINT', onSigint);
    console.log(studyTable(s));
    if (o.report) console.log(`report: ${await writeStudyReport(s.dir)}`);
    console.log(`study ${s.name}: ${s.runs.filter((r) => r.status === 'finished').length}/${s.runs.length} runs finished in ${((performance.now() - t0) / 1000 / 60).toFixed(1)} min; ${s.dir}`);
  });

program
  .command('report')
  .description('write report.html for a run directory or a study directory (self-contained; charts also as SVG/PNG with --export)')
  .argument('<dir>', 'a run directory (metrics.jsonl) or a study directory (summary.json)')
  .option('--export', 'also write every chart as SVG and PNG into DIR/plots')
  .action(async (dir: string, o: { export?: boolean }) => {
    const { writeRunReport, writeStudyReport } = await import('../diagnostics/report.js');
    const file = existsSync(join(dir, 'summary.json')) ? await writeStudyReport(dir, { exportPlots: o.export }) : await writeRunReport(dir, { exportPlots: o.export });
    console.log(`wrote ${file}`);
  });

program
  .command('eval')
  .description('evaluate a checkpoint on a data set; prints JSON metrics')
  .requiredOption('--checkpoint <dir>', 'a checkpoint directory (e.g. runs/NAME/best)')
  .requiredOption('--data <path>', 'a JSONL or CSV manifest, Parquet files or WebDataset shards (a path, a glob or a brace range; quote it)')
  .option('--batch <n>', 'batch size', positiveInt, 64)
  .addOption(new Option('--precision <p>', 'default: the precision the checkpoint was trained in').choices(PRECISIONS))
  .addOption(deviceOption())
  .action(async (o: { checkpoint: string; data: string; batch: number; precision?: 'fp32' | 'bf16'; device: string }) => {
    await loadTorch();
    const { evaluate } = await import('../train/inference.js');
    const m = await evaluate(o.checkpoint, o.data, { batchSize: o.batch, precision: o.precision, device: o.device });
    console.log(JSON.stringify(m));
  });

program
  .command('predict')
  .description('predict the label of an image-text pair, or of every line of a manifest')
  .requiredOption('--checkpoint <dir>', 'a checkpoint directory')
  .option('--image <file>', 'an image')
  .option('--text <text>', 'its text')
  .option('--data <path>', 'predict every sample of a manifest, Parquet files or WebDataset shards (labels optional)')
  .option('--out <file>', 'with --data: write JSONL predictions here')
  .option('--batch <n>', 'with --data: batch size', positiveInt, 64)
  .addOption(new Option('--precision <p>', 'default: the precision the checkpoint was trained in').choices(PRECISIONS))
  .addOption(deviceOption())
  .action(async (o: { checkpoint: string; image?: string; text?: string; data?: string; out?: string; batch: number; precision?: 'fp32' | 'bf16'; device: string }) => {
    if (!o.data && (!o.image || o.text === undefined)) throw new Error('give --image and --text, or --data (a manifest, Parquet files or WebDataset shards)');
    await loadTorch();
    const { loadPredictor, predict, predictManifest, predictStream } = await import('../train/inference.js');
    const p = loadPredictor(o.checkpoint, { device: o.device });
    try {
      if (o.data) {
        const { dataFormat, expandDataPaths } = await import('../data/paths.js');
        let out: string[] = [];
        if (dataFormat('--data', expandDataPaths('--data', o.data)) === 'manifest') {
          out = (await predictManifest(p, o.data, { batchSize: o.batch, precision: o.precision })).map((r) => JSON.stringify(r));
          if (!o.out) console.log(out.join('\n'));
        } else {
          // streamed: printed batch by batch as they are made; to --out, written whole at the end (never half a file)
          await predictStream(p, o.checkpoint, o.data, (batch) => {
            const lines = batch.map((r) => JSON.stringify(r));
            if (o.out) out.push(...lines);
            else process.stdout.write(`${lines.join('\n')}\n`);
          }, { batchSize: o.batch, precision: o.precision });
        }
        if (o.out) writeFileAtomic(o.out, out.length ? `${out.join('\n')}\n` : '');
      } else {
        const [pr] = await predict(p, [{ image: o.image!, text: o.text! }], { precision: o.precision });
        console.log(JSON.stringify(pr));
      }
    } finally {
      p.dispose();
    }
  });

program
  .command('serve')
  .description('serve a checkpoint over HTTP: POST /v1/predict, GET /v1/metadata, GET /healthz (docs/deploy.md)')
  .argument('<checkpoint>', 'a checkpoint directory, or a Hugging Face export of one')
  .option('--port <n>', 'TCP port (0: any free port)', nonNegativeInt, 8080)
  .option('--host <addr>', 'address to bind (0.0.0.0 or :: make it reachable from other machines)', '127.0.0.1')
  .option('--max-batch <n>', 'pairs per forward pass at most', positiveInt, 32)
  .option('--max-wait-ms <n>', 'how long a batch\'s first pair waits for more', nonNegativeInt, 5)
  .option('--max-body-mb <n>', 'request body limit in MiB', positiveInt, 20)
  .option('--max-pixels <n>', 'an image\'s width x height limit, checked before decoding', positiveInt, 40_000_000)
  .option('--max-text-chars <n>', 'a text\'s length limit in characters', positiveInt, 10000)
  .option('--max-items <n>', 'pairs per request at most', positiveInt, 64)
  .addOption(new Option('--precision <p>', 'default: the precision the checkpoint was trained in').choices(PRECISIONS))
  .addOption(deviceOption())
  .action(async (checkpoint: string, o: { port: number; host: string; maxBatch: number; maxWaitMs: number; maxBodyMb: number; maxPixels: number; maxTextChars: number; maxItems: number; precision?: 'fp32' | 'bf16'; device: string }) => {
    await loadTorch();
    const { loadPredictor } = await import('../train/inference.js');
    const { predictionServer } = await import('../serve/server.js');
    const p = loadPredictor(checkpoint, { device: o.device });
    const s = predictionServer(p, {
      maxBatch: o.maxBatch, maxWaitMs: o.maxWaitMs, maxBodyBytes: o.maxBodyMb * 2 ** 20, maxPixels: o.maxPixels,
      maxTextChars: o.maxTextChars, maxItems: o.maxItems, precision: o.precision,
    });
    const addr = await s.listen(o.port, o.host);
    const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
    console.log(`mmtrain serve: ${checkpoint} (${p.info.labels.length} labels) on http://${host}:${addr.port} — POST /v1/predict, GET /v1/metadata, GET /healthz`);
    if (!/^(127\.|::1$|localhost$)/.test(o.host)) console.error(`mmtrain serve: bound to ${o.host}: reachable from other machines, without authentication`);
    let stopping = false;
    const stop = () => {
      if (stopping) process.exit(130);
      stopping = true;
      console.error('mmtrain serve: stopping (answering the requests in progress; Ctrl-C again to abort)');
      void s.close().then(() => {
        p.dispose();
        console.error(`mmtrain serve: stopped after ${s.stats.items} predictions in ${s.stats.batches} batches`);
        process.exit(0);
      });
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });

program
  .command('init')
  .description('write a commented example configuration')
  .argument('[file]', 'where to write it', 'mmtrain.yaml')
  .action((file: string) => {
    if (existsSync(file)) throw new Error(`${file} exists; choose another name`);
    writeFileSync(file, EXAMPLE_CONFIG);
    console.log(`wrote ${file}`);
  });

program
  .command('export')
  .description('write a checkpoint as Hugging Face folders (hf), one ONNX graph (onnx) or a browser page (web); docs/deploy.md')
  .argument('<checkpoint>', 'a checkpoint directory (e.g. runs/NAME/best), or a Hugging Face export of one')
  .addOption(new Option('--format <f>', 'hf: the encoders as Hugging Face folders (BertModel, ViTModel, ...) + the fusion head; onnx: the whole classifier as one ONNX graph; web: a static page that runs it in the browser').choices(['hf', 'onnx', 'web']).default('hf'))
  .requiredOption('--out <dir>', 'a new (or empty) folder')
  .option('--check-file <file>', 'hf: also write inputs and the encoders\' outputs for scripts/hf-check.py')
  .option('--fp16', 'onnx, web: weights stored as float16 (half the size), computed in float32')
  .option('--int8', 'onnx, web: Linear layers dynamically quantised to int8')
  .option('--token-type-ids', 'onnx: a token_type_ids input (default: every token in segment 0, as mmtrain tokenizes one text)')
  .option('--external-data', 'onnx: weights in model.onnx.data beside model.onnx (automatic past protobuf\'s 2 GB limit)')
  .option('--check-data <manifest>', 'onnx: run the export with ONNX Runtime Web on this manifest and compare it with the checkpoint (logits, agreement, accuracy)')
  .action(async (checkpoint: string, o: { format: 'hf' | 'onnx' | 'web'; out: string; checkFile?: string; fp16?: boolean; int8?: boolean; tokenTypeIds?: boolean; externalData?: boolean; checkData?: string }) => {
    const onnxOnly = (['fp16', 'int8', 'tokenTypeIds', 'externalData', 'checkData'] as const).filter((k) => o[k] !== undefined);
    const flag = (k: string) => `--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
    if (o.format === 'hf' && onnxOnly.length) throw new Error(`${flag(onnxOnly[0]!)} applies to --format onnx only`);
    const notWeb = onnxOnly.filter((k) => k !== 'fp16' && k !== 'int8');
    if (o.format === 'web' && notWeb.length) throw new Error(`${flag(notWeb[0]!)} applies to --format onnx only`);
    if (o.format !== 'hf' && o.checkFile) throw new Error('--check-file applies to --format hf only (for ONNX, --check-data MANIFEST)');
    await loadTorch();
    if (o.format === 'web') {
      const { exportWeb } = await import('../export/web.js');
      const r = exportWeb(checkpoint, o.out, { fp16: o.fp16, int8: o.int8 });
      const mib = Object.values(r.files).reduce((a, b) => a + b, 0) / 2 ** 20;
      console.log(`wrote ${r.dir}: index.html and the model (${Object.keys(r.files).length} files, ${mib.toFixed(1)} MiB); serve the folder over HTTP, e.g. python3 -m http.server -d ${r.dir}`);
      return;
    }
    if (o.format === 'onnx') {
      const { exportOnnx } = await import('../export/onnx.js');
      const r = exportOnnx(checkpoint, o.out, { fp16: o.fp16, int8: o.int8, tokenTypeIds: o.tokenTypeIds, externalData: o.externalData ? true : 'auto' });
      console.log(`wrote ${r.model}${r.externalData ? ` and ${r.externalData}` : ''} (${(r.bytes / 2 ** 20).toFixed(1)} MiB${o.int8 ? ', int8 Linear layers' : o.fp16 ? ', float16 weights' : ''}), with mmtrain.json, config.json and the tokenizer`);
      if (o.checkData) {
        const { loadPredictor } = await import('../train/inference.js');
        const { compareOnnx } = await import('../export/onnx-check.js');
        const p = loadPredictor(checkpoint, { device: 'cpu' });
        try {
          const c = await compareOnnx(p, o.out, o.checkData);
          const acc = c.accuracy ? `; accuracy ${(c.accuracy.onnx * 100).toFixed(2)}% (mmtrain ${(c.accuracy.mmtrain * 100).toFixed(2)}%)` : '';
          console.log(`ONNX Runtime Web on ${c.samples} samples of ${o.checkData}: logits within ${c.maxAbsDiff.toExponential(2)} of mmtrain's, probabilities within ${c.maxProbDiff.toExponential(2)}; same label for ${(c.agreement * 100).toFixed(2)}%${acc}`);
        } finally {
          p.dispose();
        }
      }
      return;
    }
    const { exportHuggingFace, writeHfCheckFile } = await import('../export/hf.js');
    const r = exportHuggingFace(checkpoint, o.out);
    console.log(`wrote ${r.textEncoder} (${r.classes.text}), ${r.imageEncoder} (${r.classes.image}) and ${r.fusion} (fusion + head); mmtrain eval/predict --checkpoint ${r.dir} use it as it is`);
    if (o.checkFile) {
      writeHfCheckFile(r.dir, o.checkFile);
      console.log(`wrote ${o.checkFile}: check the export with python3 scripts/hf-check.py ${r.dir} ${o.checkFile}`);
    }
  });

program
  .command('info')
  .description('print what this build runs on: LibTorch, CUDA, cuDNN, NCCL, BLAS, CPU bf16 support, threads')
  .option('--json', 'print it as JSON (with LibTorch\'s full build configuration)')
  .action(async (o: { json?: boolean }) => {
    const { buildInfo } = await loadTorch();
    const { buildReport } = await import('../tensor/build-info.js');
    const r = buildReport();
    if (o.json) {
      console.log(JSON.stringify({ ...r, node: process.version, torchConfig: buildInfo().config }, null, 2));
      return;
    }
    const rows: [string, string][] = [
      ['mmtrain', `${program.version()} on Node ${process.version}`],
      ['LibTorch', `${r.libtorch} (C++11 ABI ${r.cxx11Abi ? 'on' : 'off'})`],
      ['CUDA', r.cuda.build ? `${r.cuda.build} build${r.cuda.linked ? '' : ' (the addon was not linked against libtorch_cuda)'}, ` +
        (r.cuda.available ? `${r.cuda.devices} device(s)` : 'no device visible') : 'none (CPU build)'],
      ...r.gpus.map((g): [string, string] => [`cuda:${g.index}`, g.name
        ? `${g.name}, ${(g.totalMemory / 2 ** 30).toFixed(1)} GiB, compute capability ${g.major}.${g.minor}, ${g.multiProcessors} SMs`
        : 'details unknown: the addon was built without the CUDA runtime headers (cuda_runtime_api.h)']),
      ['cuDNN', r.cudnn ?? 'none'],
      ['NCCL', r.nccl ? 'built in' : 'none'],
      ['parallel', !r.distributed.gloo ? 'no data-parallel training in this build (c10d Gloo headers missing at build time)'
        : `Gloo; gradients averaged ${r.distributed.overlap ? 'during backward (c10d Reducer)' : 'after backward (these LibTorch headers lack what c10d\'s Reducer includes)'}`],
      ['BLAS', r.blas],
      ['CPU', `${r.cpu.capability ?? 'unknown'} kernels; bf16 ${r.cpu.bf16}`],
      ['threads', r.threads],
      ['conv2d', r.convolution],
      ['allocator', r.allocator],
    ];
    for (const [k, v] of rows) console.log(`${k.padEnd(10)} ${v}`);
  });
