// How a node type is declared: one object with typed inputs (zod schemas), typed outputs and a run
// function. The run function's argument types are inferred from the same declaration, so a node's
// inputs are written once. The registry renders ComfyUI's /object_info from these declarations.
import { z } from 'zod';

/** Widget kinds, as ComfyUI names them in /object_info. */
export type WidgetKind = 'INT' | 'FLOAT' | 'STRING' | 'BOOLEAN' | 'COMBO';

/** Where a node finds files. Every path a node reads or writes must stay inside one of these. */
export interface NodePaths {
  output: string;
  input: string;
  temp: string;
  models: string;
}

/** What COMBO option lists and custom validation may look at. */
export interface NodeEnv {
  paths: NodePaths;
}

interface SpecBase<T> {
  /** Validates a literal (widget) value; link values are checked by socket type instead. */
  readonly schema: z.ZodType<T>;
  readonly tooltip?: string;
}

export interface IntSpec extends SpecBase<number> {
  readonly kind: 'INT';
  readonly default: number;
  readonly min: number;
  readonly max: number;
  readonly step: number;
  /** ComfyUI's seed widget behaviour (randomize/increment after queueing) in the editor. */
  readonly controlAfterGenerate?: boolean;
}

export interface FloatSpec extends SpecBase<number> {
  readonly kind: 'FLOAT';
  readonly default: number;
  readonly min: number;
  readonly max: number;
  readonly step: number;
  readonly round?: number;
}

export interface StringSpec extends SpecBase<string> {
  readonly kind: 'STRING';
  readonly default: string;
  readonly multiline: boolean;
}

export interface BooleanSpec extends SpecBase<boolean> {
  readonly kind: 'BOOLEAN';
  readonly default: boolean;
}

export interface ComboSpec extends SpecBase<string> {
  readonly kind: 'COMBO';
  /** A fixed list, or one computed when asked (e.g. the model folders present now). */
  readonly options: readonly string[] | ((env: NodeEnv) => string[]);
  readonly default?: string;
  /** Values outside the list that are still accepted (e.g. an absolute model path). */
  readonly acceptOther?: (value: string) => boolean;
}

/** An input fed by a link from another node's output of socket type `type`. */
export interface LinkSpec<T> extends SpecBase<T> {
  readonly kind: 'LINK';
  /** Socket type name: LATENT, NOISE, ... ; '*' accepts any type. */
  readonly type: string;
}

export type WidgetSpec = IntSpec | FloatSpec | StringSpec | BooleanSpec | ComboSpec;
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- erased element type of heterogeneous maps
export type InputSpec = WidgetSpec | LinkSpec<any>;
export type InputSpecs = Record<string, InputSpec>;

export type InferInput<S> = S extends SpecBase<infer T> ? T : never;

/** What a run function receives: required inputs always, optional ones possibly undefined. */
export type RunInputs<R extends InputSpecs, O extends InputSpecs> = { [K in keyof R]: InferInput<R[K]> } & {
  [K in keyof O]?: InferInput<O[K]>;
};

export interface OutputSpec<T> {
  readonly type: string;
  readonly name: string;
  /** Phantom: carries the value type for inference; never set. */
  readonly __value?: T;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- erased element type of heterogeneous tuples
export type OutputSpecs = readonly OutputSpec<any>[];

export type OutputValues<O extends OutputSpecs> = {
  -readonly [K in keyof O]: O[K] extends OutputSpec<infer T> ? T : never;
};

/** ComfyUI's UI output of a node: `{images: [{filename, subfolder, type}], animated: [true], ...}`. */
export type UiOutput = Record<string, unknown[]>;

export interface RunResult<O extends OutputSpecs> {
  outputs: OutputValues<O>;
  /** Output nodes report their files here; it reaches history and the `executed` message. */
  ui?: UiOutput;
}

export interface LoopPosition {
  /** 0-based iteration of the innermost loop this node runs in. */
  iteration: number;
  iterations: number;
}

export type RunOutcome = { ok: true } | { ok: false; error: unknown; interrupted: boolean };

export interface RunContext {
  readonly nodeId: string;
  readonly classType: string;
  /** Aborts on interrupt; long nodes check it between steps (`signal.throwIfAborted()`). */
  readonly signal: AbortSignal;
  readonly paths: NodePaths;
  /** Set when the node runs inside a loop body. */
  readonly loop?: LoopPosition;
  /** Step progress of this node (`progress` event). */
  progress(value: number, max: number): void;
  /** A preview image (binary WebSocket frame). */
  preview(image: { format: 'jpeg' | 'png'; data: Uint8Array }): void;
  /**
   * False when the host shows no previews (a CLI run): a node may skip the work of encoding one,
   * and preview() drops it. Absent means previews are wanted.
   */
  readonly previews?: boolean;
  /** Partial UI output sent at once (`executed`) without waiting for the node to finish the loop. */
  emitUi(ui: UiOutput): void;
  /**
   * Storage of this node for the current prompt run, kept across loop iterations (a streaming
   * writer keeps its open encoder here). Dropped when the run ends.
   */
  readonly state: Record<string, unknown>;
  /** Called once when the prompt run ends, in success, error or interrupt (cleanup, renames). */
  onRunEnd(callback: (outcome: RunOutcome) => void | Promise<void>): void;
}

export interface ValidationIssue {
  /** The input the issue is about, when there is one. */
  input?: string;
  message: string;
}

export interface NodeDefinition<R extends InputSpecs, O extends InputSpecs, Out extends OutputSpecs> {
  /** class_type in workflows; public API, never renamed. */
  name: string;
  displayName: string;
  category: string;
  description: string;
  inputs: { required: R; optional?: O };
  outputs: Out;
  /** Output nodes are what a prompt runs for (ComfyUI's OUTPUT_NODE). */
  outputNode?: boolean;
  /** Loop construct markers; the scheduler gives these two nodes their meaning. */
  role?: 'loop-start' | 'loop-end';
  /**
   * Extra checks on the literal inputs before anything runs (custom_validation_failed).
   * Linked inputs are absent from `inputs` here.
   */
  validate?(
    inputs: Partial<RunInputs<R, O>>,
    env: NodeEnv,
  ): ValidationIssue[] | undefined | Promise<ValidationIssue[] | undefined>;
  /**
   * Something outside the inputs that changes the result (a file's mtime and size): folded into
   * the cache signature, like ComfyUI's IS_CHANGED.
   */
  fingerprint?(inputs: Partial<RunInputs<R, O>>, env: NodeEnv): string | Promise<string>;
  run(inputs: RunInputs<R, O>, ctx: RunContext): RunResult<Out> | Promise<RunResult<Out>>;
}

/** A node definition with its types erased, as the registry and the engine hold it. */
export interface AnyNodeDef {
  name: string;
  displayName: string;
  category: string;
  description: string;
  inputs: { required: InputSpecs; optional?: InputSpecs };
  outputs: OutputSpecs;
  outputNode?: boolean;
  role?: 'loop-start' | 'loop-end';
  validate?(
    inputs: Record<string, unknown>,
    env: NodeEnv,
  ): ValidationIssue[] | undefined | Promise<ValidationIssue[] | undefined>;
  fingerprint?(inputs: Record<string, unknown>, env: NodeEnv): string | Promise<string>;
  run(
    inputs: Record<string, unknown>,
    ctx: RunContext,
  ): RunResult<OutputSpecs> | Promise<RunResult<OutputSpecs>>;
}

export function defineNode<
  const R extends InputSpecs,
  const O extends InputSpecs = Record<never, never>,
  const Out extends OutputSpecs = readonly [],
>(def: NodeDefinition<R, O, Out>): AnyNodeDef {
  return def as unknown as AnyNodeDef;
}

interface NumberOpts {
  default: number;
  min?: number;
  max?: number;
  step?: number;
  tooltip?: string;
}

/** Input constructors: each returns the spec with its zod schema built from the same numbers. */
export const input = {
  int(o: NumberOpts & { controlAfterGenerate?: boolean }): IntSpec {
    const min = o.min ?? Number.MIN_SAFE_INTEGER;
    const max = o.max ?? Number.MAX_SAFE_INTEGER;
    return {
      kind: 'INT',
      default: o.default,
      min,
      max,
      step: o.step ?? 1,
      controlAfterGenerate: o.controlAfterGenerate,
      tooltip: o.tooltip,
      schema: z.number().int().min(min).max(max),
    };
  },
  float(o: NumberOpts & { round?: number }): FloatSpec {
    const min = o.min ?? -Number.MAX_VALUE;
    const max = o.max ?? Number.MAX_VALUE;
    return {
      kind: 'FLOAT',
      default: o.default,
      min,
      max,
      step: o.step ?? 0.01,
      round: o.round,
      tooltip: o.tooltip,
      schema: z.number().finite().min(min).max(max),
    };
  },
  string(
    o: { default?: string; multiline?: boolean; tooltip?: string; maxLength?: number } = {},
  ): StringSpec {
    return {
      kind: 'STRING',
      default: o.default ?? '',
      multiline: o.multiline ?? false,
      tooltip: o.tooltip,
      schema: z.string().max(o.maxLength ?? 100_000),
    };
  },
  boolean(o: { default: boolean; tooltip?: string }): BooleanSpec {
    return { kind: 'BOOLEAN', default: o.default, tooltip: o.tooltip, schema: z.boolean() };
  },
  combo(
    options: readonly string[] | ((env: NodeEnv) => string[]),
    o: { default?: string; tooltip?: string; acceptOther?: (value: string) => boolean } = {},
  ): ComboSpec {
    return {
      kind: 'COMBO',
      options,
      default: o.default,
      acceptOther: o.acceptOther,
      tooltip: o.tooltip,
      schema: z.string(),
    };
  },
  link<T>(type: string, o: { tooltip?: string } = {}): LinkSpec<T> {
    return { kind: 'LINK', type, tooltip: o.tooltip, schema: z.custom<T>() };
  },
};

/** An output socket of type `type`, named `name` (defaults to the type). */
export function output<T>(type: string, name?: string): OutputSpec<T> {
  return { type, name: name ?? type };
}
