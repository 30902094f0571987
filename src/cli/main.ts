#!/usr/bin/env node
// The mmtrain command line. OpenMP's thread-waiting policy must be chosen before LibTorch loads, and the best one
// depends on the run's precision (see threading.ts), so the commands load only after it is set.
import { tuneThreadWaiting } from './threading.js';

tuneThreadWaiting(process.argv.slice(2));
await import('./commands.js');
