// The command line's options: a value outside an option's choices, or a number that is not one, is refused by the
// parser with the option, the value received and what it takes (before any command runs or LibTorch loads).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CommanderError } from 'commander';
import { program } from '../src/cli/commands.js';
import { interruptHandler } from '../src/cli/interrupts.js';

// errors come back as exceptions instead of ending the process
for (const c of [program, ...program.commands]) c.exitOverride().configureOutput({ writeErr: () => {}, writeOut: () => {} });

/** Parses a command line, returning the parser's error message (commander exits the process without this). */
async function refusal(args: string[]): Promise<string> {
  try {
    await program.parseAsync(args, { from: 'user' });
  } catch (e) {
    assert.ok(e instanceof CommanderError, String(e));
    return e.message;
  }
  assert.fail(`${args.join(' ')} was accepted`);
}

test('enumerated options are choices: the error names the option, the value and the allowed values', async () => {
  assert.equal(await refusal(['demo', '--precision', 'fp16']), "error: option '--precision <p>' argument 'fp16' is invalid. Allowed choices are fp32, bf16.");
  assert.match(await refusal(['synth', '--out', 'x', '--difficulty', 'brutal']), /option '--difficulty <level>' argument 'brutal' is invalid\. Allowed choices are easy, medium, hard\./);
  assert.match(await refusal(['synth', '--out', 'x', '--task', 'count']), /option '--task <task>' argument 'count' is invalid\. Allowed choices are match, imbalanced\./);
  assert.match(await refusal(['study', '--builtin', 'nope']), /option '--builtin <name>' argument 'nope' is invalid\. Allowed choices are original-design-ablation, modality-balance, finetune-regime\./);
});

test('numeric options are parsed: the error names the option, the value and what it takes', async () => {
  assert.equal(await refusal(['demo', '--n', 'ten']), "error: option '--n <count>' argument 'ten' is invalid. Expected a positive integer.");
  assert.match(await refusal(['--threads', '0', 'info']), /option '--threads <n>' argument '0' is invalid\. Expected a positive integer\./);
  assert.match(await refusal(['eval', '--checkpoint', 'c', '--data', 'd', '--batch', '2.5']), /option '--batch <n>' argument '2\.5' is invalid\. Expected a positive integer\./);
  assert.match(await refusal(['launch', '--nproc', '2', '--node-rank', '-1', '--', 'train']), /option '--node-rank <r>' argument '-1' is invalid\. Expected an integer >= 0\./);
  assert.match(await refusal(['study', '--builtin', 'modality-balance', '--seeds', '1,,x']), /option '--seeds <list>' argument '1,,x' is invalid\. Expected comma-separated non-negative integers/);
});

test('Ctrl-C: the first interrupt says what happens and stops the run through its signal; the second exits with 130 at once', () => {
  const ac = new AbortController();
  const calls: string[] = [];
  const onSigint = interruptHandler(ac, { first: () => calls.push('first'), exit: (code) => calls.push(`exit ${code}`) });
  assert.equal(ac.signal.aborted, false);
  onSigint();
  assert.deepEqual(calls, ['first']);
  assert.equal(ac.signal.aborted, true);
  onSigint();
  assert.deepEqual(calls, ['first', 'exit 130']);
  onSigint();
  assert.deepEqual(calls, ['first', 'exit 130', 'exit 130']);
});
