// Ctrl-C during training: the first interrupt asks the run to finish its step, checkpoint and stop; a second one
// aborts at once with status 130 (128 + SIGINT), as a shell expects of an interrupted command.

export interface InterruptActions {
  /** the first interrupt: tell the user what happens, then stop the run through its AbortController */
  first(): void;
  /** the second: exit now */
  exit(code: number): void;
}

/** A SIGINT listener: the first call aborts `ac` (after `first()`), any later one calls `exit(130)`. */
export function interruptHandler(ac: AbortController, actions: InterruptActions): () => void {
  let interrupts = 0;
  return () => {
    interrupts++;
    if (interrupts === 1) {
      actions.first();
      ac.abort();
    } else {
      actions.exit(130);
    }
  };
}

/** The commands' listener: says what the first interrupt does, prints "aborted" and exits 130 on the second. */
export function onCtrlC(ac: AbortController): () => void {
  return interruptHandler(ac, {
    first: () => console.error('\ninterrupt: finishing this step and saving a checkpoint (Ctrl-C again to abort)'),
    exit: (code) => {
      console.error('aborted');
      process.exit(code);
    },
  });
}
