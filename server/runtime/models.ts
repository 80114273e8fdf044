// The UNet, text encoder and VAE decoder handles over worker sessions. Each adapts the sampler's
// float32 tensors to what its ONNX model declares (float16 in/out, int32/int64 ids, the timestep's
// type and shape) at the model boundary, and checks shapes so a mismatch names model and input.
import { float16ToFloat32, float32ToFloat16 } from '../core/half.ts';
import type { Tensor } from '../core/tensor-type.ts';
import type { FloatType, TextEncoderIO, UNetIO, VaeIO } from './io.ts';
import type { WireTensor } from './protocol.ts';
import type { OpenSession, SessionPool } from './sessions.ts';
import type { ClipTokenizer } from './tokenizer.ts';
import type { TextEncoderModel, UNetModel, VaeDecoderModel } from './types.ts';

/** A float32 tensor as the model's float type; `fresh` = the caller's buffer may be moved. */
function floatFeed(
  data: Float32Array,
  dims: readonly number[],
  type: FloatType,
  fresh: boolean,
  transfer: ArrayBuffer[],
): WireTensor {
  if (type === 'float16') {
    const h = float32ToFloat16(data);
    transfer.push(h.buffer as ArrayBuffer);
    return { type, dims, data: h };
  }
  if (fresh && data.byteOffset === 0 && data.byteLength === data.buffer.byteLength) {
    transfer.push(data.buffer as ArrayBuffer);
  }
  // Not transferred: structured clone copies it, the caller's tensor stays intact.
  return { type, dims, data };
}

function toFloat32(t: WireTensor, what: string): Float32Array {
  if (t.data instanceof Float32Array) return t.data;
  if (t.type === 'float16' && t.data instanceof Uint16Array) return float16ToFloat32(t.data);
  throw new Error(`${what} returned ${t.type}; expected float32 or float16`);
}

/** Throws when a fixed dim of the model's input disagrees with the tensor being fed. */
function checkDims(
  model: string,
  input: string,
  want: readonly (number | string)[] | null,
  got: readonly number[],
) {
  if (want === null) return;
  const bad = want.length !== got.length || want.some((d, i) => typeof d === 'number' && d !== got[i]);
  if (bad) {
    throw new Error(`${model}: input "${input}" expects shape [${want.join(', ')}], got [${got.join(', ')}]`);
  }
}

function specShape(s: OpenSession, name: string): readonly (number | string)[] | null {
  return s.io.inputs.find((i) => i.name === name)?.shape ?? null;
}

export function makeUNet(pool: SessionPool, session: OpenSession, io: UNetIO, label: string): UNetModel {
  return {
    kind: 'unet',
    dynamicBatch: io.dynamicBatch,
    async predict(sample: Tensor, timestep: number, hidden: Tensor, signal?: AbortSignal): Promise<Tensor> {
      const b = sample.shape[0];
      if (sample.shape.length !== 5) {
        throw new Error(
          `${label}: input "${io.sample}" must be [B,C,F,h,w], got [${sample.shape.join(', ')}]`,
        );
      }
      if (hidden.shape.length !== 3 || hidden.shape[0] !== b) {
        throw new Error(
          `${label}: input "${io.hidden}" must be [${b}, tokens, width] to match sample batch ${b}, got [${hidden.shape.join(', ')}]`,
        );
      }
      checkDims(label, io.sample, specShape(session, io.sample), sample.shape);
      checkDims(label, io.hidden, specShape(session, io.hidden), hidden.shape);
      const transfer: ArrayBuffer[] = [];
      const tDims = io.timestepShape === 'scalar' ? [] : io.timestepShape === 'one' ? [1] : [b];
      const n = io.timestepShape === 'batch' ? b : 1;
      let tData: WireTensor['data'];
      if (io.timestepType === 'int64') tData = new BigInt64Array(n).fill(BigInt(Math.round(timestep)));
      else if (io.timestepType === 'int32') tData = new Int32Array(n).fill(Math.round(timestep));
      else if (io.timestepType === 'float16') tData = float32ToFloat16(new Float32Array(n).fill(timestep));
      else tData = new Float32Array(n).fill(timestep);
      transfer.push(tData.buffer as ArrayBuffer);
      const feeds: Record<string, WireTensor> = {
        [io.sample]: floatFeed(sample.data, sample.shape, io.sampleType, false, transfer),
        [io.timestep]: { type: io.timestepType, dims: tDims, data: tData },
        [io.hidden]: floatFeed(hidden.data, hidden.shape, io.hiddenType, false, transfer),
      };
      const out = (await pool.run(session, feeds, [io.output], transfer, signal))[io.output];
      const data = toFloat32(out, label);
      if (data.length !== sample.data.length) {
        throw new Error(
          `${label}: output "${io.output}" has shape [${out.dims.join(', ')}], expected [${sample.shape.join(', ')}]`,
        );
      }
      return { data, shape: [...sample.shape] };
    },
  };
}

export function makeTextEncoder(
  pool: SessionPool,
  session: OpenSession,
  io: TextEncoderIO,
  tokenizer: ClipTokenizer,
  label: string,
): TextEncoderModel {
  // A model exported with a fixed sequence length decides the length; otherwise the tokenizer's.
  const length = io.seqLen ?? tokenizer.maxLength;
  return {
    kind: 'text_encoder',
    async encode(text: string, signal?: AbortSignal): Promise<Tensor> {
      const ids = tokenizer.encode(text, length);
      const data = io.idsType === 'int64' ? BigInt64Array.from(ids, (i) => BigInt(i)) : Int32Array.from(ids);
      const feeds = { [io.input]: { type: io.idsType, dims: [1, length], data } };
      const out = (await pool.run(session, feeds, [io.output], [data.buffer as ArrayBuffer], signal))[
        io.output
      ];
      if (out.dims.length !== 3) {
        throw new Error(
          `${label}: output "${io.output}" has shape [${out.dims.join(', ')}], expected [1, ${length}, width]`,
        );
      }
      return { data: toFloat32(out, label), shape: [...out.dims] };
    },
  };
}

export function makeVaeDecoder(
  pool: SessionPool,
  session: OpenSession,
  io: VaeIO,
  scalingFactor: number,
  label: string,
): VaeDecoderModel {
  return {
    kind: 'vae',
    scalingFactor,
    async decode(
      latent: Tensor,
      framesPerBatch: number,
      signal?: AbortSignal,
      into?: Float32Array,
    ): Promise<Tensor> {
      if (latent.shape.length !== 5) {
        throw new Error(`${label}: latent must be [B,C,F,h,w], got [${latent.shape.join(', ')}]`);
      }
      const [B, C, F, h, w] = latent.shape;
      const total = B * F;
      const chunk = io.dynamicBatch ? Math.max(1, Math.min(Math.floor(framesPerBatch), total)) : 1;
      const plane = h * w;
      let images: Float32Array | null = null;
      let H = 0;
      let W = 0;
      for (let start = 0; start < total; start += chunk) {
        signal?.throwIfAborted();
        const n = Math.min(chunk, total - start);
        // Frames in output order (batch-major, then frame): gather [n, C, h, w] and unscale z.
        const x = new Float32Array(n * C * plane);
        for (let k = 0; k < n; k++) {
          const bi = Math.floor((start + k) / F);
          const f = (start + k) % F;
          for (let c = 0; c < C; c++) {
            const src = ((bi * C + c) * F + f) * h * w;
            const dst = (k * C + c) * plane;
            for (let p = 0; p < plane; p++) x[dst + p] = latent.data[src + p] / scalingFactor;
          }
        }
        const transfer: ArrayBuffer[] = [];
        const dims = [n, C, h, w];
        checkDims(label, io.input, specShape(session, io.input), dims);
        const feeds = { [io.input]: floatFeed(x, dims, io.inType, true, transfer) };
        const out = (await pool.run(session, feeds, [io.output], transfer, signal))[io.output];
        const y = toFloat32(out, label);
        if (out.dims.length !== 4 || out.dims[0] !== n || out.dims[1] !== 3) {
          throw new Error(
            `${label}: output "${io.output}" has shape [${out.dims.join(', ')}], expected [${n}, 3, H, W]`,
          );
        }
        if (images === null) {
          H = out.dims[2];
          W = out.dims[3];
          // Every element is written below, so a reused buffer needs no clearing.
          images = into?.length === total * H * W * 3 ? into : new Float32Array(total * H * W * 3);
        }
        // [n,3,H,W] in [-1,1] → [n,H,W,3] in [0,1].
        const hw = H * W;
        for (let k = 0; k < n; k++) {
          const base = (start + k) * hw * 3;
          for (let c = 0; c < 3; c++) {
            const src = (k * 3 + c) * hw;
            for (let p = 0; p < hw; p++) {
              const v = y[src + p] / 2 + 0.5;
              images[base + p * 3 + c] = v < 0 ? 0 : v > 1 ? 1 : v;
            }
          }
        }
      }
      return { data: images ?? new Float32Array(0), shape: [total, H, W, 3] };
    },
  };
}
