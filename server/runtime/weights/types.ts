// What a converter reads from a checkpoint: named tensors with their stored type and shape, read
// one at a time as float32 (never the whole file in memory). Implemented by the safetensors and
// PyTorch-zip readers; a component's shards are merged behind the same interface.

/** Element types found in checkpoints (safetensors names, lower-cased). */
export type StoredDType =
  'float32' | 'float16' | 'bfloat16' | 'float64' | 'int64' | 'int32' | 'int16' | 'int8' | 'uint8' | 'bool';

export interface TensorInfo {
  readonly key: string;
  readonly dtype: StoredDType;
  readonly shape: readonly number[];
  /** The file the tensor is stored in, as messages name it (the reader's label; `<label>/<name>` in a component). */
  readonly file: string;
}

export interface WeightSource {
  /** Every tensor of the checkpoint, by state-dict key, in file order. */
  readonly tensors: ReadonlyMap<string, TensorInfo>;
  /** One tensor's values as float32 (float16/bfloat16/float64 converted), C order. */
  read(key: string): Promise<Float32Array>;
  /**
   * A float16 tensor's raw bits, without decoding (float16 → float16 conversions copy them as they
   * are). Absent, or resolving to undefined, when the tensor is not float16 or not stored contiguously.
   */
  readHalf?(key: string): Promise<Uint16Array | undefined>;
  /** Releases open file handles. */
  close(): Promise<void>;
}

/** `bytes` as a fresh, aligned Uint16Array. */
export function halfBits(bytes: Uint8Array): Uint16Array {
  const out = new Uint16Array(bytes.byteLength / 2);
  new Uint8Array(out.buffer).set(bytes);
  return out;
}

export function numel(shape: readonly number[]): number {
  return shape.reduce((a, d) => a * d, 1);
}

/** Bytes per element of a stored type. */
export const DTYPE_BYTES: Record<StoredDType, number> = {
  float32: 4,
  float16: 2,
  bfloat16: 2,
  float64: 8,
  int64: 8,
  int32: 4,
  int16: 2,
  int8: 1,
  uint8: 1,
  bool: 1,
};
