// Summaries of repeated measurements: medians with min–max (the numbers BENCHMARKS.md shows), and
// percentiles of latency samples.

export interface Summary {
  readonly median: number;
  readonly min: number;
  readonly max: number;
  readonly n: number;
}

function sorted(values: readonly number[], what: string): number[] {
  if (values.length === 0) throw new Error(`${what}: no values`);
  if (values.some((v) => !Number.isFinite(v))) throw new Error(`${what}: values must be finite numbers`);
  return [...values].sort((a, b) => a - b);
}

/** Middle value; the mean of the two middle values for an even count. */
export function median(values: readonly number[]): number {
  const s = sorted(values, 'median');
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

/** Linear-interpolated percentile, p in [0, 100] (numpy's default "linear" method). */
export function percentile(values: readonly number[], p: number): number {
  if (!(p >= 0 && p <= 100)) throw new Error(`percentile: p must be in [0, 100], got ${p}`);
  const s = sorted(values, 'percentile');
  const pos = ((s.length - 1) * p) / 100;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return s[lo] + (s[hi] - s[lo]) * (pos - lo);
}

export function summarize(values: readonly number[]): Summary {
  const s = sorted(values, 'summarize');
  return { median: median(s), min: s[0], max: s[s.length - 1], n: s.length };
}

/** Element-wise ratio of paired runs a[i] / b[i] (interleaved repetitions). */
export function pairedRatios(a: readonly number[], b: readonly number[]): number[] {
  if (a.length !== b.length) throw new Error(`pairedRatios: ${a.length} vs ${b.length} values`);
  return a.map((x, i) => x / b[i]);
}

/** `12.3 (11.9–13.0)` with `digits` decimals and an optional unit after the median. */
export function fmtSummary(s: Summary, digits = 1, unit = ''): string {
  const f = (v: number) => v.toFixed(digits);
  return `${f(s.median)}${unit} (${f(s.min)}–${f(s.max)})`;
}

/** Bytes as MiB. */
export function mib(bytes: number): number {
  return bytes / 1024 / 1024;
}

/** The same summary in another unit (e.g. bytes → MiB). */
export function mapSummary(s: Summary, f: (v: number) => number): Summary {
  return { median: f(s.median), min: f(s.min), max: f(s.max), n: s.n };
}
