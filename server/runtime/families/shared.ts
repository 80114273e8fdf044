// Pieces of conversion plans that several families share: the tokenizer and scheduler files, and
// the ONNX pipeline's model_index.json.
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { buildClipTextEncoder, clipIgnore, type ClipTextConfig } from '../convert/clip-text.ts';
import { Net } from '../convert/net.ts';
import type { ComponentJob } from '../convert/plan.ts';
import { buildVaeDecoder, vaeDecoderIgnore, type VaeConfig } from '../convert/vae-decoder.ts';
import { readJsonFile } from '../folder.ts';
import type { WeightSource } from '../weights/types.ts';
import type { ModelLimits } from './types.ts';

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** `rel`'s JSON object under `dir`; errors name the file. */
export async function readConfig(dir: string, rel: string): Promise<Record<string, unknown>> {
  const v = await readJsonFile(dir, rel);
  if (!isObject(v)) throw new Error(`${rel}: not a JSON object`);
  return v;
}

/** The `_class_name` of a config, or undefined. */
export function className(cfg: Record<string, unknown>): string | undefined {
  return typeof cfg._class_name === 'string' ? cfg._class_name : undefined;
}

/** A component folder that must exist; the error names it and what is needed. */
export function requireDir(root: string, rel: string, what: string): string {
  const dir = path.join(root, rel);
  if (!existsSync(dir)) throw new Error(`${rel}/: missing (${what})`);
  return dir;
}

/** Copies of the tokenizer folder's files (vocab, merges, configs, tokenizer.json). */
export function tokenizerCopies(tokenizerDir: string): { from: string; to: string }[] {
  const names = readdirSync(tokenizerDir).filter((n) => n.endsWith('.json') || n.endsWith('.txt'));
  const has = (n: string) => names.includes(n);
  if (!has('tokenizer.json') && !(has('vocab.json') && has('merges.txt'))) {
    throw new Error(`tokenizer/: needs vocab.json and merges.txt, or tokenizer.json`);
  }
  return names.map((n) => ({ from: path.join(tokenizerDir, n), to: `tokenizer/${n}` }));
}

/** model_index.json of the ONNX layout (the names diffusers' ONNX pipelines use). */
export function onnxModelIndex(): Record<string, unknown> {
  return {
    _class_name: 'OnnxTextToVideoSDPipeline',
    text_encoder: ['diffusers', 'OnnxRuntimeModel'],
    unet: ['diffusers', 'OnnxRuntimeModel'],
    vae_decoder: ['diffusers', 'OnnxRuntimeModel'],
    tokenizer: ['transformers', 'CLIPTokenizer'],
    scheduler: ['diffusers', 'DDIMScheduler'],
  };
}

/**
 * Limits of the converted video UNets (ModelScope's and VidRD's): any number of frames, and any
 * width and height that are multiples of 8 pixels (one latent cell): the graphs upsample to the
 * skip connection's size, so latents that are not multiples of 8 work as in diffusers.
 */
export function unetLimits(latentChannels: number): ModelLimits {
  return { latentChannels, sizeMultiple: 8, frames: { min: 1 } };
}

/**
 * The files directly in `dir`, sorted (none when it is absent): what a source's stamp covers.
 * Symlinks to files count: a Hugging Face cache snapshot is made of nothing else.
 */
export function filesIn(dir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const isFile = (p: string) => {
    try {
      return statSync(p).isFile();
    } catch {
      return false; // a dangling link: the reader names it if it is needed
    }
  };
  return names
    .map((n) => path.join(dir, n))
    .filter(isFile)
    .sort();
}

/** The CLIP text encoder component, its keys under `prefix` in the source (the families share it). */
export function clipTextJob(
  label: string,
  open: () => Promise<WeightSource>,
  cfg: ClipTextConfig,
  prefix?: string,
): ComponentJob {
  return {
    dir: 'text_encoder',
    label,
    open,
    build(source, dtype) {
      const net = new Net(source, { name: 'text_encoder', dtype, prefix, ignore: clipIgnore });
      buildClipTextEncoder(net, cfg);
      return { net, notes: [] };
    },
  };
}

/** The VAE decoder component (the encoder and inactive layers skipped, and said so in the notes). */
export function vaeDecoderJob(
  label: string,
  open: () => Promise<WeightSource>,
  cfg: VaeConfig,
): ComponentJob {
  return {
    dir: 'vae_decoder',
    label,
    open,
    build(source, dtype) {
      const net = new Net(source, { name: 'vae_decoder', dtype, ignore: vaeDecoderIgnore(cfg) });
      const { ignored } = buildVaeDecoder(net, cfg);
      return { net, notes: ignored.map((i) => `${i.keys} keys not used: ${i.reason}`) };
    },
  };
}
