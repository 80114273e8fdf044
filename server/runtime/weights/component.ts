// The weights of one diffusers/transformers component folder (unet/, vae/, text_encoder/, ...),
// in whichever layout save_pretrained wrote: one safetensors or PyTorch file, or shards listed by
// an index's weight_map. Shards are merged behind one WeightSource; safetensors wins when a folder
// holds both formats (it is what from_pretrained prefers, and it is cheaper to read).
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { openSafetensors } from './safetensors.ts';
import { openTorchCheckpoint } from './torch.ts';
import type { TensorInfo, WeightSource } from './types.ts';

/** Single-file names, in order of preference. */
const SINGLE_SAFETENSORS = ['model.safetensors', 'diffusion_pytorch_model.safetensors'];
const SINGLE_TORCH = ['pytorch_model.bin', 'diffusion_pytorch_model.bin'];

function openOne(file: string, label: string): Promise<WeightSource> {
  return file.endsWith('.safetensors') ? openSafetensors(file, label) : openTorchCheckpoint(file, label);
}

/** Several sources as one; a key held by two of them is an error. Takes ownership of `parts`. */
async function merge(parts: WeightSource[], what: string): Promise<WeightSource> {
  const owner = new Map<string, WeightSource>();
  const tensors = new Map<string, TensorInfo>();
  try {
    for (const p of parts) {
      for (const [k, info] of p.tensors) {
        const prev = tensors.get(k);
        if (prev !== undefined)
          throw new Error(`${what}: tensor "${k}" is in two shards: ${prev.file} and ${info.file}`);
        tensors.set(k, info);
        owner.set(k, p);
      }
    }
  } catch (e) {
    await Promise.all(parts.map((p) => p.close()));
    throw e;
  }
  return {
    tensors,
    read(key: string): Promise<Float32Array> {
      const p = owner.get(key);
      if (p === undefined) return Promise.reject(new Error(`${what}: no tensor "${key}"`));
      return p.read(key);
    },
    readHalf(key: string): Promise<Uint16Array | undefined> {
      return owner.get(key)?.readHalf?.(key) ?? Promise.resolve(undefined);
    },
    async close(): Promise<void> {
      await Promise.all(parts.map((p) => p.close()));
    },
  };
}

/** A sharded checkpoint from its `*.index.json`: every shard its weight_map names, merged. */
async function openSharded(dir: string, indexName: string, prefix: string): Promise<WeightSource> {
  const indexLabel = `${prefix}${indexName}`;
  let doc: unknown;
  try {
    doc = JSON.parse(await readFile(path.join(dir, indexName), 'utf8'));
  } catch (e) {
    throw new Error(`${indexLabel}: cannot be read as JSON (${(e as Error).message})`, { cause: e });
  }
  const map = (doc as { weight_map?: unknown } | null)?.weight_map;
  if (typeof map !== 'object' || map === null || Array.isArray(map)) {
    throw new Error(`${indexLabel}: no "weight_map" object`);
  }
  const shards: string[] = [];
  for (const [key, shard] of Object.entries(map as Record<string, unknown>)) {
    // Shard names are file names next to the index; anything else could reach outside the folder.
    if (typeof shard !== 'string' || shard === '' || shard !== path.basename(shard) || shard === '..') {
      throw new Error(`${indexLabel}: weight_map["${key}"] = ${JSON.stringify(shard)} is not a file name`);
    }
    if (!shards.includes(shard)) shards.push(shard);
  }
  const present = new Set(await readdir(dir));
  const missing = shards.filter((s) => !present.has(s));
  if (missing.length > 0) {
    throw new Error(
      `${indexLabel}: weight_map names shard file(s) missing from the folder: ${missing.join(', ')}`,
    );
  }
  const parts: WeightSource[] = [];
  try {
    for (const s of shards) parts.push(await openOne(path.join(dir, s), `${prefix}${s}`));
  } catch (e) {
    await Promise.all(parts.map((p) => p.close()));
    throw e;
  }
  const merged = await merge(parts, indexLabel);
  // The index is the contract: each key it lists must be in the shard it names.
  for (const [key, shard] of Object.entries(map as Record<string, string>)) {
    const info = merged.tensors.get(key);
    const want = `${prefix}${shard}`;
    if (info === undefined || info.file !== want) {
      await merged.close();
      throw new Error(
        `${indexLabel}: weight_map puts "${key}" in ${shard}, but ${info === undefined ? 'no shard holds it' : `it is in ${info.file}`}`,
      );
    }
  }
  return merged;
}

/**
 * Opens the weights of one component folder. `label` names the folder in messages and in each
 * tensor's `file` (default: `dir`); a label ending in "/" is used as a prefix as is.
 */
export async function openComponentWeights(dir: string, label: string = dir): Promise<WeightSource> {
  const prefix = label.endsWith('/') ? label : `${label}/`;
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (e) {
    throw new Error(
      `${label}: component folder cannot be read (${(e as NodeJS.ErrnoException).code ?? String(e)})`,
      {
        cause: e,
      },
    );
  }
  const has = new Set(names);
  const single = (list: string[]) => list.find((n) => has.has(n));
  // The plain names first; then any other index (a variant such as model.fp16.safetensors.index.json).
  const index = (suffix: string) =>
    single([`model${suffix}`, `diffusion_pytorch_model${suffix}`]) ??
    names.filter((n) => n.endsWith(suffix)).sort()[0];

  const st = single(SINGLE_SAFETENSORS);
  if (st !== undefined) return openSafetensors(path.join(dir, st), `${prefix}${st}`);
  const stIndex = index('.safetensors.index.json');
  if (stIndex !== undefined) return openSharded(dir, stIndex, prefix);
  const pt = single(SINGLE_TORCH);
  if (pt !== undefined) return openTorchCheckpoint(path.join(dir, pt), `${prefix}${pt}`);
  const ptIndex = index('.bin.index.json');
  if (ptIndex !== undefined) return openSharded(dir, ptIndex, prefix);
  // A variant download (from_pretrained(..., variant="fp16") files such as
  // diffusion_pytorch_model.fp16.safetensors) when the plain files are absent.
  const variant = (ext: string) =>
    names
      .filter(
        (n) => /^(model|diffusion_pytorch_model|pytorch_model)\.[a-z0-9_]+\./.test(n) && n.endsWith(ext),
      )
      .sort()[0];
  const stVariant = variant('.safetensors');
  if (stVariant !== undefined) return openSafetensors(path.join(dir, stVariant), `${prefix}${stVariant}`);
  const ptVariant = variant('.bin');
  if (ptVariant !== undefined) return openTorchCheckpoint(path.join(dir, ptVariant), `${prefix}${ptVariant}`);
  throw new Error(
    `${label}: no weights found (looked for ${[...SINGLE_SAFETENSORS, '*.safetensors.index.json', ...SINGLE_TORCH, '*.bin.index.json', 'variants such as diffusion_pytorch_model.fp16.safetensors'].join(', ')})`,
  );
}
