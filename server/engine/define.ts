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

/**
 * What the host lends the nodes it runs (the model runtime, say), reached through RunContext.
 * The engine knows none of them: each layer that provides one declares its field here by
 * declaration merging (`declare module '…/engine/define.ts'`), so nodes see it typed.
 */
export interface NodeServices {
  readonly [service: string]: unknown;
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
  /** Facts about each option, sent in /object_info as `option_details` (e.g. a model's family and limits). */
  readonly details?: (env: NodeEnv) => Record<string, unknown>;
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
  /** What the host lends nodes (EngineOptions.services). */
  readonly services: NodeServices;
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
  /**
   * In a loop: the outputs this node made in an earlier iteration that the engine has let go of
   * (not carried, not kept by anything), once; a node may write its new outputs into their buffers
   * instead of allocating (VAEDecode's frames), so a long loop makes no per-clip garbage of them.
   */
  recycled?(): unknown[] | undefined;
}

export interface ValidationIssue {
  /** The input the issue is about, when there is one. */
  input?: string;
  message: string;
}

/**
 * Budgets a host sets on what one prompt may allocate (the server's limits). Nodes state what they
 * cost with `cost()`; the engine compares that with these, before the node runs. Absent: no limit.
 */
export interface ResourceLimits {
  /** Pixel-frames of one clip (frames × height × width × batch): decoded, 12 bytes each. */
  clipPixels?: number;
  /** Iterations of one loop. */
  loopIterations?: number;
  /** Frames over the whole prompt: a node's frames per run × the iterations of the loops around it. */
  totalFrames?: number;
  /** Names the host in messages ("server": "the server limit of 50"). */
  source?: string;
}

export type ResourceName = Exclude<keyof ResourceLimits, 'source'>;

/** One thing a node will allocate or repeat, given its inputs, counted against a ResourceLimits budget. */
export interface Cost {
  resource: ResourceName;
  /** The input to blame (named in the error). */
  input: string;
  /** The amount this node needs, per run of the node. */
  amount: number;
  /** How the amount comes about, for the message: "1024 frames × 2048×2048 × batch 1". */
  what: string;
  /** Unit for the per-prompt total ("frames"); and what one run of the node makes ("clip"). */
  unit?: string;
  per?: string;
}

/**
 * A node's inputs as its checks see them. At validation: literals, constants computed from pure
 * nodes, and for other links a stand-in with only the fields known before the run (a tensor's
 * `shape`), or nothing. Right before the node runs: the values it actually receives.
 */
export type CheckInputs<R extends InputSpecs, O extends InputSpecs> = {
  [K in keyof R | keyof O]?: K extends keyof R ? Known<R[K]> : K extends keyof O ? Known<O[K]> : never;
};
type Known<S> = S extends LinkSpec<infer T> ? (T extends object ? Partial<T> : T) : InferInput<S>;

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
   * Extra checks before anything runs (custom_validation_failed), on what is known then (see
   * CheckInputs): a linked input may be absent, or a stand-in. When a widget input's value comes
   * from a link that could not be computed before the run, it is called again right before run().
   */
  validate?(
    inputs: CheckInputs<R, O>,
    env: NodeEnv,
  ): ValidationIssue[] | undefined | Promise<ValidationIssue[] | undefined>;
  /**
   * run() depends only on its inputs, is cheap and allocates little (IntMath): validation runs it
   * on constant inputs to know the constants it feeds downstream.
   */
  pure?: boolean;
  /**
   * Stand-ins of the outputs from what is known of the inputs, without running: the fields known
   * before the run (NoiseInit: `{shape: [batch, 4, frames, height/8, width/8]}`); undefined where
   * nothing is known. Consumers' validate() and cost() see them.
   */
  infer?(
    inputs: CheckInputs<R, O>,
    env: NodeEnv,
  ): (object | undefined)[] | undefined | Promise<(object | undefined)[] | undefined>;
  /**
   * What running the node will cost (see Cost), from its inputs: checked against the host's
   * ResourceLimits at validation where the inputs are known, else right before run().
   */
  cost?(inputs: CheckInputs<R, O>): Cost[];
  /**
   * Something outside the inputs that changes the result (a file's mtime and size): folded into
   * the cache signature, like ComfyUI's IS_CHANGED.
   */
  fingerprint?(inputs: Partial<RunInputs<R, O>>, env: NodeEnv): string | Promise<string>;
  /**
   * The part of the constant inputs that decides the result, when it is less than all of them
   * (PromptSchedule: only the current clip's prompts and weights, not the whole schedule). The
   * cache signature uses it in place of those inputs, so an edit that cannot change this node's
   * result here (a later scene's prompt) keeps its signature: cached outputs and resumable clips
   * stay valid. Linked inputs that carry constants (a loop's index) are among the constants.
   */
  signature?(inputs: Partial<RunInputs<R, O>>): unknown;
  /**
   * Output nodes in a loop: a compact form of a linked input for resume checkpoints, which must
   * give this node exactly the same result when decoded (VideoWrite keeps frames as 8-bit RGB,
   * the very bytes it encodes). Without it the value is saved as it is.
   */
  checkpointCodec?: { [K in keyof R | keyof O]?: CheckpointCodec };
  run(inputs: RunInputs<R, O>, ctx: RunContext): RunResult<Out> | Promise<RunResult<Out>>;
}

/** How an output node's input is kept in a resume checkpoint (see NodeDefinition.checkpointCodec). */
export interface CheckpointCodec {
  /** A name for the stored form: inputs stored alike are kept once. */
  name: string;
  encode(value: unknown): unknown;
  decode(stored: unknown): unknown;
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
  pure?: boolean;
  infer?(
    inputs: Record<string, unknown>,
    env: NodeEnv,
  ): (object | undefined)[] | undefined | Promise<(object | undefined)[] | undefined>;
  cost?(inputs: Record<string, unknown>): Cost[];
  fingerprint?(inputs: Record<string, unknown>, env: NodeEnv): string | Promise<string>;
  signature?(inputs: Record<string, unknown>): unknown;
  checkpointCodec?: Record<string, CheckpointCodec | undefined>;
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
    o: {
      default?: string;
      tooltip?: string;
      acceptOther?: (value: string) => boolean;
      details?: (env: NodeEnv) => Record<string, unknown>;
    } = {},
  ): ComboSpec {
    return {
      kind: 'COMBO',
      options,
      default: o.default,
      acceptOther: o.acceptOther,
      details: o.details,
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
