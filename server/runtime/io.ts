// What each part of a model folder must take and return, read from the model (never assumed):
// names, element types and shapes of the text encoder, UNet and VAE decoder, and the checks that
// turn an export that does not fit into messages naming the file, the input and the reason.

/** One graph input or output. shape null = unknown rank; a string dim is symbolic (dynamic). */
export interface ValueSpec {
  readonly name: string;
  /** onnxruntime's type names: float32, float16, int32, int64, ... */
  readonly type: string;
  readonly shape: readonly (number | string)[] | null;
}

export interface ModelIO {
  readonly inputs: readonly ValueSpec[];
  readonly outputs: readonly ValueSpec[];
}

export type FloatType = 'float32' | 'float16';
export type IdsType = 'int32' | 'int64';

export interface TextEncoderIO {
  readonly input: string;
  readonly idsType: IdsType;
  /** Fixed sequence length of the input, when the export fixes it. */
  readonly seqLen: number | null;
  readonly output: string;
  readonly outType: FloatType;
  /** Hidden width D of [1, L, D] (768 for CLIP ViT-L, 1024 for OpenCLIP ViT-H), when fixed. */
  readonly width: number | null;
}

/** How the timestep is fed: a scalar [], a [1] tensor, or one value per batch row [B]. */
export type TimestepShape = 'scalar' | 'one' | 'batch';

export interface UNetIO {
  readonly sample: string;
  readonly sampleType: FloatType;
  readonly sampleShape: readonly (number | string)[];
  readonly timestep: string;
  readonly timestepType: 'float32' | 'float16' | 'int32' | 'int64';
  readonly timestepShape: TimestepShape;
  readonly hidden: string;
  readonly hiddenType: FloatType;
  readonly hiddenWidth: number | null;
  readonly output: string;
  readonly outType: FloatType;
  /** True when the batch axis of `sample` is symbolic (CFG can run as one batch of 2). */
  readonly dynamicBatch: boolean;
}

export interface VaeIO {
  readonly input: string;
  readonly inType: FloatType;
  readonly output: string;
  readonly outType: FloatType;
  /** True when the decoder takes any number of frames per call (batch axis symbolic). */
  readonly dynamicBatch: boolean;
}

/** A check's outcome: the roles found, or what is wrong (each message names the input/output). */
export type Checked<T> = { ok: true; io: T } | { ok: false; problems: string[] };

const FLOATS = ['float32', 'float16'];

function shapeText(s: ValueSpec): string {
  return s.shape === null ? 'unknown shape' : `[${s.shape.join(', ')}]`;
}

function describeAll(list: readonly ValueSpec[]): string {
  return list.map((v) => `"${v.name}" ${v.type} ${shapeText(v)}`).join(', ') || 'none';
}

/** The value named `name`, else (when `fallbackFirst`) the only/first one of the given rank. */
function pick(list: readonly ValueSpec[], names: readonly string[], rank?: number): ValueSpec | undefined {
  for (const n of names) {
    const v = list.find((x) => x.name === n);
    if (v) return v;
  }
  return rank === undefined ? undefined : list.find((x) => x.shape?.length === rank);
}

function checkRank(v: ValueSpec, rank: number, layout: string, problems: string[], what: string): void {
  if (v.shape !== null && v.shape.length !== rank) {
    problems.push(`${what} "${v.name}" has shape ${shapeText(v)}; expected rank ${rank} ${layout}`);
  }
}

function checkType(v: ValueSpec, allowed: readonly string[], problems: string[], what: string): void {
  if (!allowed.includes(v.type)) {
    problems.push(`${what} "${v.name}" is ${v.type}; expected ${allowed.join(' or ')}`);
  }
}

function fixed(d: number | string | undefined): number | null {
  return typeof d === 'number' && d > 0 ? d : null;
}

export function checkTextEncoder(io: ModelIO): Checked<TextEncoderIO> {
  const problems: string[] = [];
  const input = pick(io.inputs, ['input_ids'], 2);
  const output = pick(io.outputs, ['last_hidden_state'], 3);
  if (!input) problems.push(`no input "input_ids" [batch, sequence] (inputs: ${describeAll(io.inputs)})`);
  if (!output)
    problems.push(
      `no output "last_hidden_state" [batch, sequence, width] (outputs: ${describeAll(io.outputs)})`,
    );
  if (input) {
    checkType(input, ['int32', 'int64'], problems, 'input');
    checkRank(input, 2, '[batch, sequence]', problems, 'input');
  }
  if (output) {
    checkType(output, FLOATS, problems, 'output');
    checkRank(output, 3, '[batch, sequence, width]', problems, 'output');
  }
  if (!input || !output || problems.length > 0) return { ok: false, problems };
  return {
    ok: true,
    io: {
      input: input.name,
      idsType: input.type as IdsType,
      seqLen: fixed(input.shape?.[1]),
      output: output.name,
      outType: output.type as FloatType,
      width: fixed(output.shape?.[2]),
    },
  };
}

export function checkUNet(io: ModelIO): Checked<UNetIO> {
  const problems: string[] = [];
  const sample = pick(io.inputs, ['sample']);
  const timestep = pick(io.inputs, ['timestep', 'timesteps']);
  const hidden = pick(io.inputs, ['encoder_hidden_states']);
  const output =
    pick(io.outputs, ['out_sample', 'sample'], 5) ?? (io.outputs.length === 1 ? io.outputs[0] : undefined);
  const have = `(inputs: ${describeAll(io.inputs)})`;
  if (!sample) problems.push(`no input "sample" [batch, 4, frames, height/8, width/8] ${have}`);
  if (!timestep) problems.push(`no input "timestep" ${have}`);
  if (!hidden) problems.push(`no input "encoder_hidden_states" [batch, tokens, width] ${have}`);
  if (!output) problems.push(`no output "out_sample" (outputs: ${describeAll(io.outputs)})`);
  if (sample) {
    checkType(sample, FLOATS, problems, 'input');
    if (sample.shape?.length === 4) {
      problems.push(
        `input "sample" has shape ${shapeText(sample)}: an image UNet [batch, 4, h, w]; a video UNet takes [batch, 4, frames, h, w]`,
      );
    } else {
      checkRank(sample, 5, '[batch, 4, frames, height/8, width/8]', problems, 'input');
    }
    const b = sample.shape?.[0];
    if (typeof b === 'number' && b > 1) {
      problems.push(
        `input "sample" has a fixed batch of ${b}; only batch 1 or a dynamic batch axis is supported`,
      );
    }
  }
  if (timestep) {
    checkType(timestep, ['float32', 'float16', 'int32', 'int64'], problems, 'input');
    if (timestep.shape !== null && timestep.shape.length > 1) {
      problems.push(`input "timestep" has shape ${shapeText(timestep)}; expected [], [1] or [batch]`);
    }
  }
  if (hidden) {
    checkType(hidden, FLOATS, problems, 'input');
    checkRank(hidden, 3, '[batch, tokens, width]', problems, 'input');
  }
  if (output) {
    checkType(output, FLOATS, problems, 'output');
    checkRank(output, 5, '[batch, 4, frames, height/8, width/8]', problems, 'output');
  }
  if (!sample || !timestep || !hidden || !output || problems.length > 0) return { ok: false, problems };
  const ts = timestep.shape;
  const timestepShape: TimestepShape =
    ts !== null && ts.length === 0 ? 'scalar' : ts !== null && typeof ts[0] === 'string' ? 'batch' : 'one';
  return {
    ok: true,
    io: {
      sample: sample.name,
      sampleType: sample.type as FloatType,
      sampleShape: sample.shape ?? [],
      timestep: timestep.name,
      timestepType: timestep.type as UNetIO['timestepType'],
      timestepShape,
      hidden: hidden.name,
      hiddenType: hidden.type as FloatType,
      hiddenWidth: fixed(hidden.shape?.[2]),
      output: output.name,
      outType: output.type as FloatType,
      dynamicBatch: typeof sample.shape?.[0] === 'string',
    },
  };
}

export function checkVae(io: ModelIO): Checked<VaeIO> {
  const problems: string[] = [];
  const input = pick(io.inputs, ['latent_sample'], 4);
  const output = pick(io.outputs, ['sample'], 4);
  if (!input) problems.push(`no input "latent_sample" [batch, 4, h, w] (inputs: ${describeAll(io.inputs)})`);
  if (!output) problems.push(`no output "sample" [batch, 3, H, W] (outputs: ${describeAll(io.outputs)})`);
  if (input) {
    checkType(input, FLOATS, problems, 'input');
    checkRank(input, 4, '[batch, 4, h, w]', problems, 'input');
  }
  if (output) {
    checkType(output, FLOATS, problems, 'output');
    checkRank(output, 4, '[batch, 3, H, W]', problems, 'output');
  }
  if (!input || !output || problems.length > 0) return { ok: false, problems };
  const b = input.shape?.[0];
  return {
    ok: true,
    io: {
      input: input.name,
      inType: input.type as FloatType,
      output: output.name,
      outType: output.type as FloatType,
      dynamicBatch: typeof b !== 'number' || b <= 0,
    },
  };
}
