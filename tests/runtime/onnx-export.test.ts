// A third-party ONNX export (modelscope-tiny-onnx-fp16: float16 UNet with external weights.pb,
// int32 input_ids, int64 [1] timestep, opset 17) opens unchanged through the runtime's loading and
// I/O path: each component matches the onnxruntime outputs stored with it, the shipped long-video
// workflow runs on it to a video, a folder missing a part is refused naming the file and how to make
// it, and copies stamped with other opsets load as far as onnxruntime itself accepts them.
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import onnxProto from 'onnx-proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listFilesRecursive } from '../../nodes/files.ts';
import { float32ToFloat16Bits } from '../../server/core/half.ts';
import { allNodes } from '../../nodes/index.ts';
import { npyToTensor, readNpy } from '../../server/core/npy.ts';
import type { Tensor } from '../../server/core/tensor-type.ts';
import { createEngine } from '../../server/engine/index.ts';
import { getRuntime, inspectModelFolder, type VideoModel } from '../../server/runtime/index.ts';
import type { WireTensor } from '../../server/runtime/protocol.ts';
import { SessionPool } from '../../server/runtime/sessions.ts';
import { expectedDir, maxAbs, maxAbsDiff, modelsDir, readCases, type ModelCase } from '../helpers/convert.ts';
import { probeVideo } from '../helpers/ffprobe.ts';
import { makePaths } from '../nodes/context.ts';
import { readWorkflow, shrink } from '../pipeline/workflow.ts';

const { onnx } = onnxProto;

const MODEL = 'modelscope-tiny-onnx-fp16';
const EXPORT = path.join(modelsDir, MODEL);
const PARTS = ['text_encoder', 'unet', 'vae_decoder'] as const;

/** The README's bar for this export: max |got - expected| ≤ 1e-2 · max(1, max |expected|). */
function fp16Bar(expected: ArrayLike<number>): number {
  return 1e-2 * Math.max(1, maxAbs(expected));
}

/** A file of expected/<model>/ as float32 (float16 and int64 files converted). */
function expected(file: string, model = MODEL): Tensor {
  return npyToTensor(readFileSync(path.join(expectedDir, model, file)));
}

const cases = readCases(MODEL);
const caseOf = (name: string): ModelCase => {
  const c = cases.find((x) => x.name === name);
  if (c === undefined) throw new Error(`no case ${name}`);
  return c;
};
const unetCases = cases.filter((c) => c.component === 'unet');

const tmp = mkdtempSync(path.join(os.tmpdir(), 'rdflow-onnx-export-'));
// The process's runtime, as LoadVideoModel uses it: the workflow run below reuses the sessions the
// component checks opened (opening this float16 UNet costs onnxruntime about 13 s of CPU).
const runtime = getRuntime();
const pool = new SessionPool();
afterAll(async () => {
  await runtime.release();
  await pool.close();
  rmSync(tmp, { recursive: true, force: true });
});

/** One raw session run through the runtime's worker (where a handle post-processes the output). */
async function runRaw(
  part: (typeof PARTS)[number],
  feeds: Record<string, WireTensor>,
  fetches: string[],
  dir = EXPORT,
): Promise<Record<string, WireTensor>> {
  const session = await pool.open(path.join(dir, part, 'model.onnx'), 'cpu');
  return pool.run(session, feeds, fetches);
}

/** Runs one UNet case through the handle (float32 in, float16 at the model boundary, float32 out). */
async function unetDiff(model: VideoModel, c: ModelCase): Promise<{ diff: number; bar: number }> {
  const sample = expected(c.inputs.sample.file!);
  const hidden = expected(c.inputs.encoder_hidden_states.file!);
  const out = await model.unet.predict(sample, c.inputs.timestep.value!, hidden);
  const want = expected(c.outputs.out_sample.file!);
  expect(out.shape).toEqual(want.shape);
  return { diff: maxAbsDiff(out.data, want.data), bar: fp16Bar(want.data) };
}

/** The text encoder handle on each prompt of the case against that row of last_hidden_state. */
async function textDiff(model: VideoModel): Promise<{ diff: number; bar: number }> {
  const c = caseOf('text_encoder');
  const want = expected(c.outputs.last_hidden_state.file!);
  const row = want.shape[1] * want.shape[2];
  let diff = 0;
  for (const [i, prompt] of c.prompts!.entries()) {
    const got = await model.textEncoder.encode(prompt);
    expect(got.shape).toEqual([1, want.shape[1], want.shape[2]]);
    diff = Math.max(diff, maxAbsDiff(got.data, want.data.subarray(i * row, (i + 1) * row)));
  }
  return { diff, bar: fp16Bar(want.data) };
}

/** The raw decoder output `sample` for the case's latent_sample. */
async function vaeDiff(dir = EXPORT): Promise<{ diff: number; bar: number }> {
  const c = caseOf('vae_decode');
  const z = expected(c.inputs.latent_sample.file!);
  const res = await runRaw(
    'vae_decoder',
    { latent_sample: { type: 'float32', dims: z.shape, data: z.data } },
    ['sample'],
    dir,
  );
  const want = expected(c.outputs.sample.file!);
  expect(res.sample.dims).toEqual(want.shape);
  return { diff: maxAbsDiff(res.sample.data as Float32Array, want.data), bar: fp16Bar(want.data) };
}

describe(`${MODEL} through the runtime, unchanged`, () => {
  let model: VideoModel;
  beforeAll(async () => {
    expect(await inspectModelFolder(EXPORT)).toEqual([]);
    model = await runtime.loadModel(EXPORT);
  }, 300_000); // opening the float16 UNet: see the opset 14 test

  it('reads the export’s own signatures: float16 dynamic-batch UNet, scaling factor from vae_decoder/config.json', () => {
    expect(model.unet.dynamicBatch).toBe(true);
    expect(model.vae.scalingFactor).toBe(0.18215);
    expect(model.schedulerConfig).toMatchObject({ steps_offset: 1, set_alpha_to_one: false });
  });

  it.each(unetCases.map((c) => [c.name, c] as const))(
    'UNet %s: predict() (int64 [1] timestep, float16 in/out) within the 1e-2 bar',
    async (_name, c) => {
      const { diff, bar } = await unetDiff(model, c);
      console.log(
        `${MODEL} ${c.name} out_sample: max |diff| ${diff.toExponential(2)} (bar ${bar.toExponential(2)})`,
      );
      expect(diff).toBeLessThanOrEqual(bar);
    },
  );

  it('text encoder: encode() tokenizes each prompt, feeds int32 ids and returns last_hidden_state', async () => {
    const { diff, bar } = await textDiff(model);
    console.log(`${MODEL} text_encoder last_hidden_state: max |diff| ${diff.toExponential(2)}`);
    // A float32 graph: the float32 bar holds too.
    expect(diff).toBeLessThanOrEqual(bar / 10);
  });

  it('text encoder session: last_hidden_state and pooler_output of the case’s int32 ids', async () => {
    const c = caseOf('text_encoder');
    const ids = readNpy(readFileSync(path.join(expectedDir, MODEL, c.inputs.input_ids.file!)));
    expect(ids.dtype).toBe('int32');
    const res = await runRaw(
      'text_encoder',
      { input_ids: { type: 'int32', dims: ids.shape, data: ids.data as Int32Array } },
      ['last_hidden_state', 'pooler_output'],
    );
    for (const name of ['last_hidden_state', 'pooler_output']) {
      const want = expected(c.outputs[name].file!);
      expect(res[name].dims).toEqual(want.shape);
      expect(maxAbsDiff(res[name].data as Float32Array, want.data)).toBeLessThanOrEqual(
        fp16Bar(want.data) / 10,
      );
    }
  });

  it('VAE decoder: the raw sample within the bar; decode() unscales z and maps it to [0, 1] frames', async () => {
    const raw = await vaeDiff();
    console.log(`${MODEL} vae_decode sample: max |diff| ${raw.diff.toExponential(2)}`);
    expect(raw.diff).toBeLessThanOrEqual(raw.bar / 10);

    // The handle takes the sampler's latents [1, 4, F, h, w] (before / scaling_factor).
    const latents = expected('vae_latents.npy', 'modelscope-tiny');
    const frames = await model.vae.decode(latents, 2);
    const sample = expected(caseOf('vae_decode').outputs.sample.file!);
    const [F, , H, W] = sample.shape;
    expect(frames.shape).toEqual([F, H, W, 3]);
    const want = new Float32Array(frames.data.length);
    for (let f = 0; f < F; f++) {
      for (let ch = 0; ch < 3; ch++) {
        for (let p = 0; p < H * W; p++) {
          const v = sample.data[(f * 3 + ch) * H * W + p] / 2 + 0.5;
          want[(f * H * W + p) * 3 + ch] = Math.min(1, Math.max(0, v));
        }
      }
    }
    expect(maxAbsDiff(frames.data, want)).toBeLessThanOrEqual(1e-3);
  });
});

describe(`the shipped workflow on ${MODEL}`, () => {
  const paths = makePaths('rdflow-onnx-export-wf-');
  afterAll(() => paths.cleanup());

  it('vidrd-long-video.json (2 clips, 3 steps, 64×64) runs on the folder as it is to an MP4 and a GIF of N·K frames', async () => {
    // LoadVideoModel (CLI) takes the folder by absolute path: the export is used where it lies.
    const prompt = shrink(readWorkflow('vidrd-long-video.json'), {
      model: EXPORT,
      steps: 3,
      size: 64,
      frames: 8,
      clips: 2,
      prefix: 'onnx',
    });
    const engine = createEngine({ nodes: allNodes, paths, services: { models: getRuntime() } });
    const v = await engine.validate(prompt);
    expect(v).toMatchObject({ ok: true });
    const result = await engine.run(prompt, { promptId: 'onnx-export' });
    expect(result).toMatchObject({ status: 'success' });
    const files = await listFilesRecursive(path.join(paths.output, 'onnx'));
    expect(files.map((f) => path.extname(f)).sort()).toEqual(['.gif', '.mp4']);
    for (const f of files) {
      expect(await probeVideo(path.join(paths.output, 'onnx', f))).toMatchObject({
        frames: 16,
        width: 64,
        height: 64,
      });
    }
  });
});

/** A copy of the export without the folder `part`/. */
function copyWithout(part: string): string {
  const dir = path.join(tmp, `without-${part}`);
  cpSync(EXPORT, dir, { recursive: true, filter: (src) => path.relative(EXPORT, src) !== part });
  return dir;
}

describe('a copy of the export missing a part', () => {
  it.each([
    ['text_encoder', 'text_encoder/model.onnx'],
    ['vae_decoder', 'vae_decoder/model.onnx'],
    ['unet', 'unet/model.onnx'],
  ])('without %s/ fails validation naming %s and how to make it', async (part, rel) => {
    const dir = copyWithout(part);
    const problems = await inspectModelFolder(dir);
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(new RegExp(`^${rel.replace('.', '\\.')}: missing \\(`));
    expect(problems[0]).toContain('rdflow convert <diffusers folder> <dest>');
    await expect(runtime.loadModel(dir)).rejects.toThrow(`${rel}: missing`);
  });

  it('the workflow on a copy without vae_decoder/ fails validation at LoadVideoModel with the same message', async () => {
    const dir = copyWithout('vae_decoder');
    const paths = makePaths('rdflow-onnx-export-broken-');
    try {
      const engine = createEngine({ nodes: allNodes, paths, services: { models: getRuntime() } });
      const v = await engine.validate(
        shrink(readWorkflow('vidrd-long-video.json'), { model: dir, steps: 3, size: 64 }),
      );
      expect(v.ok).toBe(false);
      if (v.ok) return;
      const messages = Object.values(v.nodeErrors).flatMap((e) => e.errors.map((x) => x.message));
      expect(messages).toEqual([expect.stringContaining('vae_decoder/model.onnx: missing (') as string]);
      expect(messages[0]).toContain('rdflow convert <diffusers folder> <dest>');
    } finally {
      paths.cleanup();
    }
  });

  it('without unet/weights.pb names the external weights file', async () => {
    const dir = path.join(tmp, 'without-weights');
    cpSync(EXPORT, dir, { recursive: true, filter: (src) => path.basename(src) !== 'weights.pb' });
    expect(await inspectModelFolder(dir)).toEqual([
      'unet/weights.pb: missing (external weights of unet/model.onnx)',
    ]);
  });
});

/**
 * LayerNormalization (ai.onnx since opset 17) as exporters write it below 17: ReduceMean over the
 * axis, Sub, Mul, ReduceMean, Add ε, Sqrt, Div, then scale and bias; ε in the graph's float type.
 */
function decomposeLayerNorm(graph: onnxProto.onnx.IGraphProto, elemType: number): void {
  const nodes: onnxProto.onnx.INodeProto[] = [];
  let k = 0;
  const ints = (name: string, v: number[]) =>
    onnx.AttributeProto.create({ name, type: onnx.AttributeProto.AttributeType.INTS, ints: v });
  for (const n of graph.node ?? []) {
    if (n.opType !== 'LayerNormalization') {
      nodes.push(n);
      continue;
    }
    const axis = Number(n.attribute?.find((a) => a.name === 'axis')?.i ?? -1);
    const eps = n.attribute?.find((a) => a.name === 'epsilon')?.f ?? 1e-5;
    const t = (s: string) => `ln${k}_${s}`;
    const epsName = t('eps');
    const raw = Buffer.alloc(elemType === 10 ? 2 : 4);
    if (elemType === 10) raw.writeUInt16LE(float32ToFloat16Bits(eps));
    else raw.writeFloatLE(eps);
    graph.initializer!.push(
      onnx.TensorProto.create({ name: epsName, dataType: elemType, dims: [], rawData: raw }),
    );
    const [x, scale, bias] = n.input!;
    const node = (
      opType: string,
      input: string[],
      output: string,
      attribute: onnxProto.onnx.IAttributeProto[] = [],
    ) => nodes.push(onnx.NodeProto.create({ opType, input, output: [output], name: output, attribute }));
    node('ReduceMean', [x], t('mean'), [ints('axes', [axis])]);
    node('Sub', [x, t('mean')], t('d'));
    node('Mul', [t('d'), t('d')], t('d2'));
    node('ReduceMean', [t('d2')], t('var'), [ints('axes', [axis])]);
    node('Add', [t('var'), epsName], t('vareps'));
    node('Sqrt', [t('vareps')], t('std'));
    node('Div', [t('d'), t('std')], t('norm'));
    node('Mul', [t('norm'), scale], t('scaled'));
    node('Add', [t('scaled'), bias], n.output![0]);
    k++;
  }
  graph.node = nodes;
}

/** A copy of the export whose ai.onnx opset_import says `opset` (IR version as exporters pair them). */
function copyAtOpset(opset: number): string {
  const dir = path.join(tmp, `opset-${opset}`);
  cpSync(EXPORT, dir, { recursive: true });
  for (const part of PARTS) {
    const file = path.join(dir, part, 'model.onnx');
    const m = onnx.ModelProto.decode(readFileSync(file));
    m.opsetImport = [onnx.OperatorSetIdProto.create({ domain: '', version: opset })];
    m.irVersion = opset <= 14 ? 7 : opset <= 18 ? 8 : opset <= 20 ? 9 : 10;
    if (opset < 17) decomposeLayerNorm(m.graph!, part === 'unet' ? 10 : 1);
    rmSync(file);
    writeFileSync(file, onnx.ModelProto.encode(m).finish());
  }
  return dir;
}

describe('the export stamped with other opsets', () => {
  // Every op of these graphs whose schema changed in opsets 18-20 (Resize, Cast, Constant, Equal,
  // Reshape, Shape, ConstantOfShape) is in the text encoder or VAE too, so the UNet (whose session
  // costs onnxruntime 13+ s of CPU to open) is run only at 14, where its LayerNormalization is
  // decomposed into other ops.
  // A float16 UNet session takes onnxruntime 13+ s of CPU to open, far more on a busy machine.
  it('opset 14 (LayerNormalization decomposed): the whole folder loads through the runtime, every component within the bar', async () => {
    const dir = copyAtOpset(14);
    expect(await inspectModelFolder(dir)).toEqual([]);
    const model = await runtime.loadModel(dir);
    const unet = await unetDiff(model, caseOf('unet_f8_s16_t501'));
    const text = await textDiff(model);
    const vae = await vaeDiff(dir);
    console.log(
      `opset 14: unet ${unet.diff.toExponential(2)}, text ${text.diff.toExponential(2)}, vae ${vae.diff.toExponential(2)}`,
    );
    expect(unet.diff).toBeLessThanOrEqual(unet.bar);
    expect(text.diff).toBeLessThanOrEqual(text.bar / 10);
    expect(vae.diff).toBeLessThanOrEqual(vae.bar / 10);
    await runtime.release();
    await pool.release();
  }, 300_000);

  it.each([18, 19, 20])(
    'opset %i: the folder validates; text encoder and VAE sessions open and stay within the bar',
    async (opset) => {
      const dir = copyAtOpset(opset);
      expect(await inspectModelFolder(dir)).toEqual([]);
      const c = caseOf('text_encoder');
      const ids = readNpy(readFileSync(path.join(expectedDir, MODEL, c.inputs.input_ids.file!)));
      const res = await runRaw(
        'text_encoder',
        { input_ids: { type: 'int32', dims: ids.shape, data: ids.data as Int32Array } },
        ['last_hidden_state'],
        dir,
      );
      const want = expected(c.outputs.last_hidden_state.file!);
      const text = maxAbsDiff(res.last_hidden_state.data as Float32Array, want.data);
      const vae = await vaeDiff(dir);
      console.log(`opset ${opset}: text ${text.toExponential(2)}, vae ${vae.diff.toExponential(2)}`);
      expect(text).toBeLessThanOrEqual(fp16Bar(want.data) / 10);
      expect(vae.diff).toBeLessThanOrEqual(vae.bar / 10);
      await pool.release();
    },
  );

  it('an opset newer than onnxruntime supports is refused at load, naming the file and the opset', async () => {
    const dir = copyAtOpset(99);
    await expect(runtime.loadModel(dir)).rejects.toThrow(/text_encoder\/model\.onnx[^]*Opset 99/);
  });
});
