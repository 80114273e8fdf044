// PyTorch's CPU generator, so that a seed means the same noise here as in ComfyUI or a diffusers
// script: `torch.manual_seed(seed); torch.randn(shape)` in float32 (spec: vidrd.md, "Seeds").
import type { Tensor } from './tensor-type.ts';
import { numel } from './tensor.ts';

const N = 624;
const M = 397;
const MATRIX_A = 0x9908b0df;
const UPPER_MASK = 0x80000000;
const LOWER_MASK = 0x7fffffff;
const TWO_PI = 2 * Math.PI;
const TWO_POW_M24 = 2 ** -24;
const TWO_POW_M53 = 2 ** -53;
const TWO_POW_32 = 2 ** 32;

/**
 * The 32 bits of a seed that PyTorch's MT19937 uses. `torch.manual_seed` takes the seed as a uint64
 * (negative Python ints wrap, two's complement) and `mt19937(seed)` keeps only its low 32 bits, so
 * seeds s and s + 2^32 give the same noise. ComfyUI seeds go to 2^64 - 1: pass those as bigint.
 */
export function torchSeedToUint32(seed: number | bigint): number {
  if (typeof seed === 'bigint') return Number(BigInt.asUintN(32, seed));
  if (!Number.isInteger(seed)) throw new Error(`seed must be an integer, got ${seed}`);
  if (Number.isSafeInteger(seed)) return ((seed % TWO_POW_32) + TWO_POW_32) % TWO_POW_32;
  return Number(BigInt.asUintN(32, BigInt(seed)));
}

/** MT19937 with the standard `init_genrand` seeding (what ATen's mt19937 engine does). */
export class Mt19937 {
  private readonly state = new Uint32Array(N);
  private index = N;

  constructor(seed: number | bigint) {
    const s = this.state;
    s[0] = torchSeedToUint32(seed);
    for (let j = 1; j < N; j++) {
      const prev = s[j - 1] ^ (s[j - 1] >>> 30);
      s[j] = Math.imul(1812433253, prev) + j;
    }
  }

  private twist(): void {
    const s = this.state;
    for (let k = 0; k < N; k++) {
      const y = (s[k] & UPPER_MASK) | (s[(k + 1) % N] & LOWER_MASK);
      s[k] = s[(k + M) % N] ^ (y >>> 1) ^ (y & 1 ? MATRIX_A : 0);
    }
    this.index = 0;
  }

  /** The next tempered 32-bit output, as an unsigned number. */
  nextUint32(): number {
    if (this.index >= N) this.twist();
    let y = this.state[this.index++];
    y ^= y >>> 11;
    y ^= (y << 7) & 0x9d2c5680;
    y ^= (y << 15) & 0xefc60000;
    y ^= y >>> 18;
    return y >>> 0;
  }
}

/**
 * One `torch.Generator` on the CPU after `manual_seed(seed)`: successive `randn` calls continue its
 * stream exactly as successive `torch.randn` calls do (including the cached second Box–Muller value
 * of the small-tensor path).
 */
export class TorchGenerator {
  private readonly mt: Mt19937;
  private nextDoubleNormal: number | undefined;

  constructor(seed: number | bigint) {
    this.mt = new Mt19937(seed);
  }

  /** Float uniform in [0, 1) with 24 random bits (`uniform_real_distribution<float>`). */
  private uniform24(): number {
    return (this.mt.nextUint32() & 0xffffff) * TWO_POW_M24;
  }

  /** Double uniform in [0, 1) with 53 random bits from two draws, the first one high. */
  private uniform53(): number {
    const hi = this.mt.nextUint32();
    const lo = this.mt.nextUint32();
    return ((hi & 0x1fffff) * TWO_POW_32 + lo) * TWO_POW_M53;
  }

  /** `normal_distribution<double>`: Box–Muller on doubles, the sine half kept for the next call. */
  private normalDouble(): number {
    if (this.nextDoubleNormal !== undefined) {
      const v = this.nextDoubleNormal;
      this.nextDoubleNormal = undefined;
      return v;
    }
    const a = this.uniform53();
    const b = this.uniform53();
    const r = Math.sqrt(-2 * Math.log1p(-b));
    const theta = TWO_PI * a;
    this.nextDoubleNormal = r * Math.sin(theta);
    return r * Math.cos(theta);
  }

  /** `torch.randn(shape)` (float32) from this generator. */
  randn(shape: readonly number[]): Tensor {
    for (const d of shape) {
      if (!Number.isInteger(d) || d < 0) throw new Error(`randn: invalid shape [${shape.join(', ')}]`);
    }
    const n = numel(shape);
    const out = new Float32Array(n);
    if (n >= 16) {
      // normal_fill: all uniforms first, then Box–Muller per block of 16 pairing j with j + 8.
      for (let k = 0; k < n; k++) out[k] = this.uniform24();
      for (let k = 0; k + 16 <= n; k += 16) boxMuller16(out, k);
      if (n % 16 !== 0) {
        // The tail: 16 fresh uniforms into the last 16 slots, transformed as one block.
        const start = n - 16;
        for (let k = 0; k < 16; k++) out[start + k] = this.uniform24();
        boxMuller16(out, start);
      }
    } else {
      for (let k = 0; k < n; k++) out[k] = this.normalDouble();
    }
    return { data: out, shape: [...shape] };
  }
}

// ATen's normal_fill_16 in float: u1 = 1 - u (never 0), radius = sqrt(-2 ln u1), θ = 2π·u2.
function boxMuller16(data: Float32Array, at: number): void {
  const f = Math.fround;
  for (let j = 0; j < 8; j++) {
    const u1 = f(1 - data[at + j]);
    const u2 = data[at + j + 8];
    const radius = f(Math.sqrt(f(-2 * f(Math.log(u1)))));
    const theta = f(TWO_PI * u2);
    data[at + j] = radius * f(Math.cos(theta));
    data[at + j + 8] = radius * f(Math.sin(theta));
  }
}

/** `torch.manual_seed(seed); torch.randn(shape)` in float32. */
export function torchRandn(shape: readonly number[], seed: number | bigint): Tensor {
  return new TorchGenerator(seed).randn(shape);
}
