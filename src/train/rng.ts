// The CPU generator's state as text, for trainer_state.json: resuming restores the exact random stream.
import { getRngState, setRngState } from '../tensor/modes.js';
import { tensor } from '../tensor/tensor.js';

export function rngToString(): string {
  const t = getRngState();
  try {
    return Buffer.from(t.toBuffer()).toString('base64');
  } finally {
    t.dispose();
  }
}

export function rngFromString(s: string): void {
  const bytes = Buffer.from(s, 'base64');
  const t = tensor(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length), { dtype: 'uint8' });
  try {
    setRngState(t);
  } finally {
    t.dispose();
  }
}
