// The ModelScope text-to-video family as diffusers ships it (TextToVideoSDPipeline:
// text-to-video-ms-1.7b, the Zeroscope v2 models and their fine-tunes): CLIP text encoder,
// UNet3DConditionModel, AutoencoderKL, DDIM scheduler, weights as safetensors or PyTorch .bin.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parseClipTextConfig } from '../../convert/clip-text.ts';
import { Net } from '../../convert/net.ts';
import type { ComponentJob, ConversionPlan } from '../../convert/plan.ts';
import { parseVaeConfig } from '../../convert/vae-decoder.ts';
import { openComponentWeights } from '../../weights/index.ts';
import {
  className,
  clipTextJob,
  filesIn,
  onnxModelIndex,
  readConfig,
  requireDir,
  tokenizerCopies,
  unetLimits,
  vaeDecoderJob,
} from '../shared.ts';
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
  const open = (part: string) => () => openComponentWeights(path.join(dir, part), `${part}/`);
  const components: ComponentJob[] = [
    clipTextJob('text_encoder', open('text_encoder'), textCfg),
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
    vaeDecoderJob('vae', open('vae'), vaeCfg),
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
    stampFiles: [
      path.join(dir, 'model_index.json'),
      ...['text_encoder', 'unet', 'vae', 'tokenizer', 'scheduler'].flatMap((part) =>
        filesIn(path.join(dir, part)),
      ),
    ],
  };
}

export const modelscopeFamily: ModelFamily = {
  id: 'modelscope',
  label: 'ModelScope text-to-video (diffusers TextToVideoSDPipeline: text-to-video-ms-1.7b, Zeroscope v2)',
  recognise: (dir) => Promise.resolve(isModelscopeSource(dir)),
  plan,
  limits: (cfg) => unetLimits(typeof cfg.in_channels === 'number' ? cfg.in_channels : 4),
};
