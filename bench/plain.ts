// The baseline of the engine-overhead benchmark: the shipped VidRD workflow written as a plain
// script. onnxruntime-node sessions created directly on the main thread (same files, same session
// options as server/runtime/sessions.ts), fed the same inputs in the same order (text encoder ×2,
// per clip S UNet calls on the CFG batch of 2, VAE decode in chunks), the same sampler math
// (server/core) and the same MP4 + GIF writers (server/runtime/video). No engine, no nodes, no worker
// thread, no previews. Run directly (`tsx bench/plain.ts SETTINGS_JSON`) it is one cold process.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { parseSchedulerConfig, type DdimConfig } from '../server/core/ddim.ts';
import { sampleClip } from '../server/core/sampler.ts';
import type { Tensor } from '../server/core/tensor-type.ts';
import { torchRandn } from '../server/core/torch-rng.ts';
import { openVideoWriter, resolveOutputPath } from '../server/runtime/video/index.ts';
import { flipFrames, pnsNoise, type DsgRecord } from '../server/core/vidrd.ts';
import type { ApiPrompt } from '../server/engine/types.ts';
import { readScalingFactor } from '../server/runtime/folder.ts';
import { sessionOptions } from '../server/runtime/sessions.ts';
import { loadClipTokenizer, type ClipTokenizer } from '../server/runtime/tokenizer.ts';

/** The workflow's literal inputs that the plain script needs. */
export interface PlainSettings {
  modelDir: string;
  outDir: string;
  positive: string;
  negative: string;
  noiseSeed: number;
  frames: number;
  width: number;
  height: number;
  clips: number;
  steps: number;
  cfg: number;
  beta: number;
  referenceFrames: number;
  alpha: number;
  pnsSeed: number;
  framesPerBatch: number;
  writers: { format: 'mp4' | 'gif'; fps: number; prefix: string }[];
}

/** Reads the values from the very prompt the engine runs (vidrd-long-video.json's node ids). */
export function plainSettings(prompt: ApiPrompt, modelDir: string, outDir: string): PlainSettings {
  const v = (id: string, input: string): unknown => {
    const value = prompt[id]?.inputs[input];
    if (value === undefined || Array.isArray(value)) throw new Error(`node ${id}.${input}: no literal value`);
    return value;
  };
  const num = (id: string, input: string) => Number(v(id, input));
  const writer = (id: string) => ({
    format: v(id, 'format') as 'mp4' | 'gif',
    fps: num(id, 'fps'),
    prefix: String(v(id, 'filename_prefix')),
  });
  return {
    modelDir,
    outDir,
    positive: String(v('2', 'text')),
    negative: String(v('3', 'text')),
    noiseSeed: num('4', 'seed'),
    frames: num('4', 'frames'),
    width: num('4', 'width'),
    height: num('4', 'height'),
    clips: num('5', 'iterations'),
    steps: num('6', 'steps'),
    cfg: num('6', 'cfg'),
    beta: num('6', 'beta'),
    referenceFrames: num('6', 'reference_frames'),
    alpha: num('12', 'alpha'),
    pnsSeed: num('12', 'seed'),
    framesPerBatch: num('7', 'frames_per_batch'),
    writers: [writer('8'), writer('9')],
  };
}

export interface PlainModel {
  text: ort.InferenceSession;
  unet: ort.InferenceSession;
  vae: ort.InferenceSession;
  tokenizer: ClipTokenizer;
  scheduler: DdimConfig;
  scalingFactor: number;
}

/** Sessions for a model folder whose inputs are the bench model's (int64 ids, int64 timestep [B]). */
export async function openPlainModel(dir: string): Promise<PlainModel> {
  const options = sessionOptions('cpu') as unknown as ort.InferenceSession.SessionOptions;
  const open = (rel: string) => ort.InferenceSession.create(path.join(dir, rel), { ...options });
  return {
    text: await open('text_encoder/model.onnx'),
    unet: await open('unet/model.onnx'),
    vae: await open('vae_decoder/model.onnx'),
    tokenizer: await loadClipTokenizer(path.join(dir, 'tokenizer')),
    scheduler: parseSchedulerConfig(
      JSON.parse(readFileSync(path.join(dir, 'scheduler', 'scheduler_config.json'), 'utf8')),
    ),
    scalingFactor: await readScalingFactor(dir),
  };
}

export interface PlainRun {
  ms: number;
  /** Time inside session.run() calls. */
  ortMs: number;
  unetCalls: number;
  unetMs: number;
  files: string[];
}

export async function runPlain(m: PlainModel, s: PlainSettings): Promise<PlainRun> {
  const started = performance.now();
  let ortMs = 0;
  let unetMs = 0;
  let unetCalls = 0;
  const run = async (session: ort.InferenceSession, feeds: Record<string, ort.Tensor>) => {
    const t = performance.now();
    const out = await session.run(feeds);
    ortMs += performance.now() - t;
    return out;
  };

  const encode = async (text: string): Promise<Tensor> => {
    const ids = m.tokenizer.encode(text);
    const input = new ort.Tensor('int64', BigInt64Array.from(ids, BigInt), [1, ids.length]);
    const out = (await run(m.text, { input_ids: input })).last_hidden_state;
    return { data: out.data as Float32Array, shape: [...out.dims] };
  };
  const positive = await encode(s.positive);
  const negative = await encode(s.negative);

  const denoise = async (sample: Tensor, t: number, hidden: Tensor): Promise<Tensor> => {
    const B = sample.shape[0];
    const t0 = performance.now();
    const out = await run(m.unet, {
      sample: new ort.Tensor('float32', sample.data, sample.shape),
      timestep: new ort.Tensor('int64', new BigInt64Array(B).fill(BigInt(Math.round(t))), [B]),
      encoder_hidden_states: new ort.Tensor('float32', hidden.data, hidden.shape),
    });
    unetMs += performance.now() - t0;
    unetCalls++;
    return { data: out.out_sample.data as Float32Array, shape: [...sample.shape] };
  };

  const writers = s.writers.map((w) =>
    openVideoWriter({ format: w.format, fps: w.fps, path: resolveOutputPath(s.outDir, w.prefix, w.format) }),
  );
  const shape = [1, 4, s.frames, s.height / 8, s.width / 8];
  let noise = torchRandn(shape, s.noiseSeed);
  let previous: DsgRecord | undefined;
  for (let c = 0; c < s.clips; c++) {
    const { latent, record } = await sampleClip({
      noise,
      positive,
      negative,
      steps: s.steps,
      cfg: s.cfg,
      eta: 0,
      seed: 42n,
      scheduler: m.scheduler,
      previous,
      beta: s.beta,
      referenceFrames: s.referenceFrames,
      denoise,
      dynamicBatch: true,
    });
    const images = await decode(m, latent, s.framesPerBatch, run);
    for (const w of writers) await w.write(images);
    noise = pnsNoise(
      flipFrames(noise),
      torchRandn(shape, BigInt(s.pnsSeed) + BigInt(c + 1)),
      s.alpha,
      s.referenceFrames,
    );
    previous = record;
  }
  const files: string[] = [];
  for (const w of writers) files.push(...(await w.finish()));
  return { ms: performance.now() - started, ortMs, unetCalls, unetMs, files };
}

/** [1,C,F,h,w] latent → frames [F,H,W,3] in [0,1], `chunk` frames per VAE call (as the runtime does). */
async function decode(
  m: PlainModel,
  latent: Tensor,
  chunk: number,
  run: (
    s: ort.InferenceSession,
    f: Record<string, ort.Tensor>,
  ) => Promise<ort.InferenceSession.OnnxValueMapType>,
): Promise<Tensor> {
  const [, C, F, h, w] = latent.shape;
  const plane = h * w;
  let images: Float32Array | undefined;
  let H = 0;
  let W = 0;
  for (let start = 0; start < F; start += chunk) {
    const n = Math.min(chunk, F - start);
    const x = new Float32Array(n * C * plane);
    for (let k = 0; k < n; k++)
      for (let c = 0; c < C; c++) {
        const src = (c * F + start + k) * plane;
        for (let p = 0; p < plane; p++) x[(k * C + c) * plane + p] = latent.data[src + p] / m.scalingFactor;
      }
    const out = (await run(m.vae, { latent_sample: new ort.Tensor('float32', x, [n, C, h, w]) })).sample;
    const y = out.data as Float32Array;
    [H, W] = [out.dims[2], out.dims[3]];
    images ??= new Float32Array(F * H * W * 3);
    const hw = H * W;
    for (let k = 0; k < n; k++)
      for (let c = 0; c < 3; c++)
        for (let p = 0; p < hw; p++) {
          const v = y[(k * 3 + c) * hw + p] / 2 + 0.5;
          images[(start + k) * hw * 3 + p * 3 + c] = v < 0 ? 0 : v > 1 ? 1 : v;
        }
  }
  return { data: images ?? new Float32Array(0), shape: [F, H, W, 3] };
}

// One cold process: imports, session creation and one run, like one `rdflow run`.
if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const settings = JSON.parse(process.argv[2]) as PlainSettings;
  const model = await openPlainModel(settings.modelDir);
  const result = await runPlain(model, settings);
  process.stdout.write(`${JSON.stringify(result)}\n`);
  process.exit(0);
}
