// VidRD's own release (Reuse and Diffuse): a Stable Diffusion 2.1-base diffusers folder for the
// configs and tokenizer, `ModelT2V.pth` (a training checkpoint whose state_dict holds the inflated
// 3-D UNet under `unet.` and the text encoder under `text_encoder.`, replacing the SD weights) and
// `vae_finetuned/` (a temporal autoencoder that VidRD's pipeline decodes one frame at a time).
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { parseClipTextConfig } from '../../convert/clip-text.ts';
import { Net } from '../../convert/net.ts';
import type { ComponentJob, ConversionPlan } from '../../convert/plan.ts';
import { parseVaeConfig } from '../../convert/vae-decoder.ts';
import { openComponentWeights, openTorchCheckpoint } from '../../weights/index.ts';
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
import { buildVidrdUNet, parseVidrdUNetConfig } from './unet.ts';

const CHECKPOINT = 'ModelT2V.pth';
const VAE_DIR = 'vae_finetuned';
/** The SD folder's name in the release; any folder holding a StableDiffusionPipeline is accepted. */
const SD_DIR = 'stable-diffusion-2-1-base';

/** The three parts of a release; given explicitly, or found in one folder. */
export interface VidrdParts {
  /** The Stable Diffusion 2.1-base diffusers folder. */
  sd: string;
  checkpoint: string;
  vae: string;
}

function isSdFolder(dir: string): boolean {
  return existsSync(path.join(dir, 'model_index.json')) && existsSync(path.join(dir, 'unet', 'config.json'));
}

/** The parts of a release laid out in one folder, or null when `dir` is not one. */
export function findParts(dir: string): VidrdParts | null {
  const checkpoint = path.join(dir, CHECKPOINT);
  const vae = path.join(dir, VAE_DIR);
  if (!existsSync(checkpoint) || !existsSync(vae)) return null;
  const named = path.join(dir, SD_DIR);
  if (isSdFolder(named)) return { sd: named, checkpoint, vae };
  if (isSdFolder(dir)) return { sd: dir, checkpoint, vae };
  for (const name of readdirSync(dir).sort()) {
    const sub = path.join(dir, name);
    if (statSync(sub).isDirectory() && isSdFolder(sub)) return { sd: sub, checkpoint, vae };
  }
  return null;
}

/** The conversion of a release given as its three parts. */
export async function planVidrd(
  parts: VidrdParts,
  root = path.dirname(parts.checkpoint),
): Promise<ConversionPlan> {
  const { sd, checkpoint, vae } = parts;
  const sdRel = path.relative(root, sd) || '.';
  const rel = (p: string) => `${sdRel}/${p}`;
  const need =
    'the Stable Diffusion 2.1-base folder of a VidRD release has text_encoder/, tokenizer/, unet/, scheduler/';
  for (const part of ['text_encoder', 'tokenizer', 'unet', 'scheduler']) requireDir(sd, part, need);
  if (!existsSync(path.join(vae, 'config.json'))) throw new Error(`${VAE_DIR}/config.json: missing`);
  const textCfg = parseClipTextConfig(
    await readConfig(sd, 'text_encoder/config.json'),
    rel('text_encoder/config.json'),
  );
  const unetCfg = parseVidrdUNetConfig(await readConfig(sd, 'unet/config.json'), rel('unet/config.json'));
  const vaeCfg = parseVaeConfig(await readConfig(vae, 'config.json'), `${VAE_DIR}/config.json`);
  const scheduler = await readConfig(sd, 'scheduler/scheduler_config.json');
  const ckptName = path.basename(checkpoint);
  const components: ComponentJob[] = [
    clipTextJob(
      `text_encoder (${ckptName}: text_encoder.*)`,
      () => openTorchCheckpoint(checkpoint, ckptName),
      textCfg,
      'text_encoder.',
    ),
    {
      dir: 'unet',
      label: `unet (${ckptName}: unet.*)`,
      open: () => openTorchCheckpoint(checkpoint, ckptName),
      build(source, dtype) {
        const others = [...source.tensors.keys()].filter(
          (k) => !k.startsWith('unet.') && !k.startsWith('text_encoder.'),
        );
        if (others.length > 0) {
          throw new Error(
            `keys outside unet.* and text_encoder.* (${others.length}): ${others.slice(0, 20).join(', ')}${others.length > 20 ? ', …' : ''}`,
          );
        }
        const net = new Net(source, { name: 'unet', dtype, prefix: 'unet.' });
        buildVidrdUNet(net, unetCfg);
        return { net, notes: [] };
      },
    },
    vaeDecoderJob(VAE_DIR, () => openComponentWeights(vae, `${VAE_DIR}/`), vaeCfg),
  ];
  // VidRD samples with diffusers' DDIMScheduler built from the SD folder's (PNDM) config.
  const ddim = { ...scheduler, _class_name: 'DDIMScheduler' };
  delete (ddim as Record<string, unknown>).skip_prk_steps;
  return {
    family: 'vidrd',
    source: root,
    components,
    copies: [
      ...tokenizerCopies(path.join(sd, 'tokenizer')),
      { from: path.join(sd, 'text_encoder', 'config.json'), to: 'text_encoder/config.json' },
      { from: path.join(sd, 'unet', 'config.json'), to: 'unet/config.json' },
      { from: path.join(vae, 'config.json'), to: 'vae_decoder/config.json' },
    ],
    json: { 'model_index.json': onnxModelIndex(), 'scheduler/scheduler_config.json': ddim },
    notes: [
      `text encoder and UNet weights from ${ckptName} (the SD folder's own weights are not used, as in VidRD's setup)`,
      `VAE: ${VAE_DIR} decoded one frame at a time as VidRD's pipeline does, so its temporal layers never act and are left out`,
      `scheduler: the SD folder's ${className(scheduler) ?? 'scheduler'} config read as DDIM, as VidRD samples`,
    ],
    limits: unetLimits(unetCfg.inChannels),
    stampFiles: [
      checkpoint,
      ...filesIn(vae),
      ...['text_encoder/config.json', 'unet/config.json', 'scheduler/scheduler_config.json'].map((p) =>
        path.join(sd, p),
      ),
      ...filesIn(path.join(sd, 'tokenizer')),
    ],
  };
}

export const vidrdFamily: ModelFamily = {
  id: 'vidrd',
  label: `VidRD release (${CHECKPOINT} + ${VAE_DIR}/ + a Stable Diffusion 2.1-base folder)`,
  recognise: (dir) => Promise.resolve(findParts(dir) !== null),
  limits: (cfg) => unetLimits(typeof cfg.in_channels === 'number' ? cfg.in_channels : 4),
  plan: (dir) => {
    const parts = findParts(dir);
    if (parts === null)
      throw new Error(`${dir}: not a VidRD release (needs ${CHECKPOINT}, ${VAE_DIR}/ and an SD folder)`);
    return planVidrd(parts, dir);
  },
};
