#!/usr/bin/env node
// The mmtrain command line. Importing the commands loads no LibTorch: each command loads it when it runs, after
// setting OpenMP's thread waiting for its run's precision (threading.ts), which libgomp reads once, at load.
import { program } from './commands.js';

program.parseAsync(process.argv).catch((e: unknown) => {
  const message = (e as Error).message;
  console.error(message.startsWith('mmtrain: ') ? message : `mmtrain: ${message}`);
  process.exit(1);
});
