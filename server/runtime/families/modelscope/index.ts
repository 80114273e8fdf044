// The ModelScope text-to-video family as diffusers ships it (TextToVideoSDPipeline:
// text-to-video-ms-1.7b, the Zeroscope v2 models and their fine-tunes): CLIP text encoder,
// UNet3DConditionModel, AutoencoderKL, DDIM scheduler, weights as safetensors or PyTorch .bin.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { buildClipTextEncoder, clipIgnore, parseClipTextConfig } from '../../convert/clip-text.ts';
import { Net } from '../../convert/net.ts';
import type { ComponentJob, ConversionPlan } from '../../convert/plan.ts';
import { buildVaeDecoder, parseVaeConfig, vaeDecoderIgnore } from '../../convert/vae-decoder.ts';
import { openComponentWeights } from '../../weights/index.ts';
import { className, onnxModelIndex, readConfig, requireDir, tokenizerCopies, unetLimits } from '../shared.ts';
import type { ModelFamily } from '../types.ts';
import { buildUNet3D, parseUNet3DConfig } from './unet3d.ts';

const PIPELINE = 'TextToVideoSDPipeline';

function readJsonSync(file: string): Record<string, unknown> {
  try {
    const v: unknown = JSON.parse(readFileSync(file, 'utf8'));
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

/** Whether `dir` is a diffusers text-to-video checkpoint (small reads, synchronous for listings). */
export function isModelscopeSource(dir: string): boolean {
  if (!existsSync(path.join(dir, 'model_index.json'))) return false;
  // An ONNX folder (its index may also say TextToVideoSDPipeline), even one missing a part, is not
  // a checkpoint: its validation names what is missing.
  const onnxParts = ['unet/model.onnx', 'text_encoder/model.onnx', 'vae_decoder'];
  if (onnxParts.some((p) => existsSync(path.join(dir, p)))) return false;
  if (!existsSync(path.join(dir, 'unet', 'config.json'))) return false;
  if (className(readJsonSync(path.join(dir, 'model_index.json'))) === PIPELINE) return true;
  // Fine-tunes sometimes keep another pipeline name: the 3-D UNet decides.
  return className(readJsonSync(path.join(dir, 'unet', 'config.json'))) === 'UNet3DConditionModel';
}

async function plan(dir: string): Promise<ConversionPlan> {
  const need =
    'a diffusers TextToVideoSDPipeline folder has text_encoder/, tokenizer/, unet/, vae/, scheduler/';
  for (const part of ['text_encoder', 'tokenizer', 'unet', 'vae', 'scheduler']) requireDir(dir, part, need);
  const textCfg = parseClipTextConfig(
    await readConfig(dir, 'text_encoder/config.json'),
    'text_encoder/config.json',
  );
  const unetCfg = parseUNet3DConfig(await readConfig(dir, 'unet/config.json'), 'unet/config.json');
  const vaeJson = await readConfig(dir, 'vae/config.json');
  const vaeCfg = parseVaeConfig(vaeJson, 'vae/config.json');
  const scheduler = await readConfig(dir, 'scheduler/scheduler_config.json');
  const weights: Record<string, string[]> = {};
  const open = (part: string) => async () => {
    const src = await openComponentWeights(path.join(dir, part), `${part}/`);
    weights[part] = [...new Set([...src.tensors.values()].map((t) => t.file))];
    return src;
  };
  const components: ComponentJob[] = [
    {
      dir: 'text_encoder',
      label: 'text_encoder',
      open: open('text_encoder'),
      build(source, dtype) {
        const net = new Net(source, { name: 'text_encoder', dtype, ignore: clipIgnore });
        buildClipTextEncoder(net, textCfg);
        return { net, notes: [] };
      },
    },
    {
      dir: 'unet',
      label: 'unet',
      open: open('unet'),
      build(source, dtype) {
        const net = new Net(source, { name: 'unet', dtype });
        buildUNet3D(net, unetCfg);
        return { net, notes: [] };
      },
    },
    {
      dir: 'vae_decoder',
      label: 'vae',
      open: open('vae'),
      build(source, dtype) {
        const net = new Net(source, { name: 'vae_decoder', dtype, ignore: vaeDecoderIgnore(vaeCfg) });
        const { ignored } = buildVaeDecoder(net, vaeCfg);
        return { net, notes: ignored.map((i) => `${i.keys} keys not used: ${i.reason}`) };
      },
    },
  ];
  return {
    family: 'modelscope',
    source: dir,
    components,
    copies: [
      ...tokenizerCopies(path.join(dir, 'tokenizer')),
      { from: path.join(dir, 'text_encoder', 'config.json'), to: 'text_encoder/config.json' },
      { from: path.join(dir, 'unet', 'config.json'), to: 'unet/config.json' },
      { from: path.join(dir, 'vae', 'config.json'), to: 'vae_decoder/config.json' },
    ],
    json: { 'model_index.json': onnxModelIndex(), 'scheduler/scheduler_config.json': scheduler },
    notes: [],
    limits: unetLimits(unetCfg.in_channels),
    stampFiles: stampFiles(dir, ['text_encoder', 'unet', 'vae', 'tokenizer', 'scheduler']),
  };
}

/** Every file of the given component folders (configs, weights, tokenizer files) plus model_index.json. */
export function stampFiles(root: string, parts: readonly string[]): string[] {
  const files = [path.join(root, 'model_index.json')];
  for (const part of parts) {
    const dir = path.join(root, part);
    if (!existsSync(dir)) continue;
    for (const name of readdirSafe(dir)) files.push(path.join(dir, name));
  }
  return files;
}

function readdirSafe(dir: string): string[] {
  try {
    return readdirSync(dir).sort();
  } catch {
    return [];
  }
}

export const modelscopeFamily: ModelFamily = {
  id: 'modelscope',
  label: 'ModelScope text-to-video (diffusers TextToVideoSDPipeline: text-to-video-ms-1.7b, Zeroscope v2)',
  recognise: (dir) => Promise.resolve(isModelscopeSource(dir)),
  plan,
  limits: (cfg) => unetLimits(typeof cfg.in_channels === 'number' ? cfg.in_channels : 4),
};
