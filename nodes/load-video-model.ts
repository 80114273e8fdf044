// LoadVideoModel: a model folder (diffusers ONNX layout) → its UNet, text encoder, VAE decoder and
// scheduler config. `demo` is always offered and generated on first use; other names resolve under
// the models folder only, and an absolute path is accepted when given explicitly.
import path from 'node:path';
import { defineNode, input, output, type NodeEnv } from '../server/engine/define.ts';
import { ensureDemoModel } from '../server/runtime/demo/index.ts';
import { getRuntime, inspectModelFolder, listModelFolders, PROVIDERS } from '../server/runtime/index.ts';
import type { TextEncoderModel, UNetModel, VaeDecoderModel } from '../server/runtime/types.ts';
import { filesFingerprint, resolveInside } from './files.ts';
import { unetStandIn } from './limits.ts';

export const DEMO_MODEL = 'demo';

function modelOptions(env: NodeEnv): string[] {
  const found = listModelFolders(env.paths.models);
  return found.includes(DEMO_MODEL) ? found : [DEMO_MODEL, ...found];
}

/** The folder a `model` value names; generates the demo model when that is the one asked for. */
export async function resolveModelDir(model: string, modelsDir: string): Promise<string> {
  if (path.isAbsolute(model)) return path.normalize(model);
  if (model === DEMO_MODEL) return ensureDemoModel(modelsDir);
  return resolveInside(modelsDir, model);
}

function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

export const loadVideoModelNode = defineNode({
  name: 'LoadVideoModel',
  displayName: 'Load Video Model',
  category: 'rdflow/loaders',
  description:
    'Loads a text-to-video model folder (ONNX: unet, text_encoder, vae_decoder, scheduler). "demo" is built in.',
  inputs: {
    required: {
      model: input.combo(modelOptions, {
        default: DEMO_MODEL,
        tooltip: 'A folder under the models directory, or an absolute path.',
        acceptOther: (v) => path.isAbsolute(v),
      }),
      provider: input.combo(PROVIDERS, { default: 'cpu', tooltip: 'onnxruntime execution provider.' }),
    },
  },
  outputs: [
    output<UNetModel>('UNET'),
    output<TextEncoderModel>('TEXT_ENCODER'),
    output<VaeDecoderModel>('VAE'),
    output<Record<string, unknown>>('SCHEDULER'),
  ],
  // A broken folder fails here, naming the file, before anything runs.
  async validate(inputs, env) {
    if (inputs.model === undefined) return undefined;
    let dir: string;
    try {
      dir = await resolveModelDir(inputs.model, env.paths.models);
    } catch (e) {
      return [{ input: 'model', message: messageOf(e) }];
    }
    const problems = await inspectModelFolder(dir);
    return problems.map((p) => ({ input: 'model', message: `model "${inputs.model}" (${dir}): ${p}` }));
  },
  async fingerprint(inputs, env) {
    if (inputs.model === undefined) return '';
    try {
      return await filesFingerprint(await resolveModelDir(inputs.model, env.paths.models));
    } catch {
      return 'unresolved';
    }
  },
  // What validation knows of the UNet before loading it: its input's fixed dims (nodes/limits.ts).
  async infer(inputs, env) {
    if (inputs.model === undefined) return undefined;
    return [await unetStandIn(await resolveModelDir(inputs.model, env.paths.models))];
  },
  async run({ model, provider }, ctx) {
    const dir = await resolveModelDir(model, ctx.paths.models);
    const m = await getRuntime().loadModel(dir, { provider });
    return { outputs: [m.unet, m.textEncoder, m.vae, m.schedulerConfig] };
  },
});
