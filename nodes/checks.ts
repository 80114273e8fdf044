// Run-time checks of linked values. Links from loop nodes are typed '*', so a value can arrive as
// anything (or nothing, when an initial value is not linked); these turn that into a message that
// names the input instead of a TypeError deep in the math.
import type { Tensor } from '../server/core/tensor-type.ts';

function describe(v: unknown): string {
  if (v === undefined || v === null) return 'nothing';
  if (typeof v !== 'object') return `a ${typeof v}`;
  return 'an object that is not a tensor';
}

/** `v` as a tensor of `rank` dimensions (e.g. 5 for a latent [B,C,F,h,w]), or a clear error. */
export function requireTensor(v: unknown, input: string, rank: number, layout: string): Tensor {
  const t = v as Partial<Tensor> | undefined;
  if (t === undefined || t === null || !(t.data instanceof Float32Array) || !Array.isArray(t.shape)) {
    throw new Error(`input "${input}": expected a tensor ${layout}, received ${describe(v)}`);
  }
  if (t.shape.length !== rank) {
    throw new Error(`input "${input}": expected ${layout}, got shape [${t.shape.join(', ')}]`);
  }
  return t as Tensor;
}
