// Messages between the main thread and the inference worker. Feeds cross as views on shared
// memory the main thread reuses (FeedStaging in sessions.ts); outputs as buffers transferred from
// the worker, not copied.
import type { ValueSpec } from './io.ts';

export type WireData = Float32Array | Uint16Array | Int32Array | BigInt64Array;

/** A tensor on the wire: onnxruntime's type name, dims, data (float16 as Uint16Array bits). */
export interface WireTensor {
  readonly type: 'float32' | 'float16' | 'int32' | 'int64';
  readonly dims: readonly number[];
  readonly data: WireData;
}

/** Session options as plain data (serializable), built in one place: sessions.ts. */
export interface WireSessionOptions {
  readonly executionProviders: readonly string[];
  readonly intraOpNumThreads: number;
  readonly interOpNumThreads: number;
  readonly graphOptimizationLevel: 'all';
  readonly executionMode: 'sequential';
  readonly logSeverityLevel: 0 | 1 | 2 | 3 | 4;
  /** onnxruntime session config entries (string values), e.g. session.intra_op.allow_spinning. */
  readonly extra: Readonly<Record<string, unknown>>;
}

export type Request =
  | { id: number; op: 'open'; key: string; file: string; options: WireSessionOptions }
  | { id: number; op: 'run'; key: string; feeds: Record<string, WireTensor>; fetches: readonly string[] }
  | { id: number; op: 'close'; key: string }
  | { id: number; op: 'release' }
  /** Finish the call in progress, fail queued ones, release everything, let the thread end. */
  | { id: number; op: 'shutdown' };

export interface OpenResult {
  readonly inputs: ValueSpec[];
  readonly outputs: ValueSpec[];
}

export type Response =
  | { id: number; ok: true; result: OpenResult | Record<string, WireTensor> | null }
  | { id: number; ok: false; error: string };
