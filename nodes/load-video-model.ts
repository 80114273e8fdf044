// LoadVideoModel: a model folder (diffusers ONNX layout) → its UNet, text encoder, VAE decoder and
// scheduler config. `demo` is always offered and generated on first use.
//
// Two variants of one node type, chosen by the host:
// - `loadVideoModelNode` (the CLI, `rdflow run`): a name under the models folder, or an absolute
//   path the user typed on their own machine.
// - `loadVideoModelNodeForServer` (what `startServer` registers instead): a prompt comes from
//   whoever can reach the server, so `model` must be one of the names /object_info lists: a folder
//   directly under the models folder whose real path (links followed) stays inside the models
//   folder's real path. Absolute paths, `..` and links out are validation errors, and no message
//   shows a filesystem path, only the model's name.
import { lstat, realpath } from 'node:fs/promises';
import { realpathSync } from 'node:fs';
import path from 'node:path';
import { defineNode, input, output, type NodeEnv, type RunContext } from '../server/engine/define.ts';
import { ensureDemoModel } from '../server/runtime/demo/index.ts';
import {
  inspectModelFolder,
  listModelFolders,
  PROVIDERS,
  type ModelLoader,
} from '../server/runtime/index.ts';
import type { TextEncoderModel, UNetModel, VaeDecoderModel } from '../server/runtime/types.ts';
import { filesFingerprint, resolveInside } from './files.ts';
import {
  ensureConverted,
  isConvertibleSource,
  convertedPath,
  isUpToDate,
  listReleaseFolders,
  sourceInfo,
} from '../server/runtime/convert/cache.ts';
import type { ConvertProgress } from '../server/runtime/convert/index.ts';
import { readModelInfo } from '../server/runtime/families/info.ts';
import { unetStandIn } from './limits.ts';

export const DEMO_MODEL = 'demo';

export interface LoadVideoModelOptions {
  /**
   * Accept an absolute path and folders reached through links (the CLI: the user names a path on
   * their own machine). False: only a model name from the models folder, confined after following
   * links (the server).
   */
  acceptPaths: boolean;
}

function inside(root: string, p: string): boolean {
  const rel = path.relative(root, p);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

/**
 * Model names under `modelsDir`: ONNX folders, diffusers checkpoints (both have model_index.json)
 * and VidRD releases; checkpoints are converted on first use.
 */
export function modelNames(modelsDir: string): string[] {
  return [...new Set([...listModelFolders(modelsDir), ...listReleaseFolders(modelsDir)])].sort();
}

/** Model folder names under `modelsDir` whose real path stays inside the models folder's. */
export function confinedModelNames(modelsDir: string): string[] {
  let realRoot: string;
  try {
    realRoot = realpathSync(modelsDir);
  } catch {
    return [];
  }
  return modelNames(modelsDir).filter((name) => {
    try {
      const real = realpathSync(path.join(modelsDir, name));
      return inside(realRoot, real) && real !== realRoot;
    } catch {
      return false;
    }
  });
}

/** A problem with the model a prompt names, told without any filesystem path. */
export class ModelNameError extends Error {
  override name = 'ModelNameError';
}

/**
 * The folder a model name resolves to for a server prompt: a plain name (no separators), directly
 * under `modelsDir`, whose real path lies inside the real models folder; the demo model is made
 * on first use. Checked again after making the demo and at run time (a link may change meanwhile).
 */
export async function resolveConfinedModelDir(model: string, modelsDir: string): Promise<string> {
  if (model === '' || model.includes('/') || model.includes('\\') || model === '.' || model === '..') {
    throw new ModelNameError(`model "${model}" is not a model name from the models folder`);
  }
  if (path.isAbsolute(model)) throw new ModelNameError(`model "${model}": paths are not accepted here`);
  const dir = path.join(path.resolve(modelsDir), model);
  const check = async (): Promise<void> => {
    let realRoot: string;
    let real: string;
    try {
      realRoot = await realpath(modelsDir);
      real = await realpath(dir);
    } catch {
      throw new ModelNameError(`model "${model}" is not in the models folder`);
    }
    if (!inside(realRoot, real) || real === realRoot) {
      throw new ModelNameError(`model "${model}" links outside the models folder; it is not accepted`);
    }
  };
  if (model === DEMO_MODEL) {
    // A link planted at models/demo must not receive the generated files either.
    if (await lstat(dir).catch(() => undefined)) await check();
    await ensureDemoModel(modelsDir);
  }
  await check();
  return dir;
}

/** The folder a `model` value names (CLI rules); generates the demo model when that is the one asked for. */
export async function resolveModelDir(model: string, modelsDir: string): Promise<string> {
  if (path.isAbsolute(model)) return path.normalize(model);
  if (model === DEMO_MODEL) return ensureDemoModel(modelsDir);
  return resolveInside(modelsDir, model);
}

/** Bytes written so far over all components of a conversion, as node progress. */
function conversionProgress(report: (done: number, total: number) => void): (p: ConvertProgress) => void {
  let total = 0;
  let before = 0;
  let current = 0;
  return (p) => {
    if (p.phase === 'start') total = p.components.reduce((a, c) => a + c.bytes, 0);
    else if (p.phase === 'write') {
      current = p.done;
      report(Math.min(before + current, total), total);
    } else {
      before += current;
      current = 0;
    }
  };
}

/** The model loader the host lends this node (EngineOptions.services.models). */
function modelLoader(ctx: RunContext): ModelLoader {
  const models = ctx.services.models;
  if (models === undefined) {
    throw new Error(
      `${ctx.classType} (node ${ctx.nodeId}): no model runtime to load the model with; ` +
        'the host must lend one (createEngine({ services: { models } }))',
    );
  }
  return models;
}

function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** `text` with every occurrence of the folder's path replaced by the model's name. */
function withoutPath(text: string, dir: string, model: string): string {
  return text.split(dir).join(`model "${model}"`);
}

export function makeLoadVideoModelNode(opts: LoadVideoModelOptions) {
  const resolve = opts.acceptPaths ? resolveModelDir : resolveConfinedModelDir;
  const modelOptions = (env: NodeEnv): string[] => {
    const found = opts.acceptPaths ? modelNames(env.paths.models) : confinedModelNames(env.paths.models);
    return found.includes(DEMO_MODEL) ? found : [DEMO_MODEL, ...found];
  };
  // Family and limits of each listed model, for /object_info (the demo model before it is made too).
  const modelDetails = (env: NodeEnv): Record<string, unknown> =>
    Object.fromEntries(
      modelOptions(env).map((name) => [name, readModelInfo(path.join(env.paths.models, name))]),
    );
  return defineNode({
    name: 'LoadVideoModel',
    displayName: 'Load Video Model',
    category: 'rdflow/loaders',
    description:
      'Loads a text-to-video model folder (ONNX: unet, text_encoder, vae_decoder, scheduler). "demo" is built in.',
    inputs: {
      required: {
        model: input.combo(modelOptions, {
          default: DEMO_MODEL,
          tooltip: opts.acceptPaths
            ? 'A folder under the models directory, or an absolute path.'
            : 'A folder under the models directory.',
          acceptOther: opts.acceptPaths ? (v) => path.isAbsolute(v) : undefined,
          details: modelDetails,
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
        dir = await resolve(inputs.model, env.paths.models);
      } catch (e) {
        return [{ input: 'model', message: messageOf(e) }];
      }
      let problems: string[];
      if (await isConvertibleSource(dir)) {
        // A checkpoint converts on first run; here only its configs are read and checked.
        problems = await sourceInfo(dir).then(
          () => [],
          (e: unknown) => [`cannot be converted: ${messageOf(e)}`],
        );
      } else {
        problems = await inspectModelFolder(dir);
      }
      if (!opts.acceptPaths) {
        // Problems name files relative to the folder; the folder itself is told by name only.
        return problems.map((p) => ({
          input: 'model',
          message: `model "${inputs.model}": ${withoutPath(p, dir, inputs.model!)}`,
        }));
      }
      return problems.map((p) => ({ input: 'model', message: `model "${inputs.model}" (${dir}): ${p}` }));
    },
    async fingerprint(inputs, env) {
      if (inputs.model === undefined) return '';
      try {
        return await filesFingerprint(await resolve(inputs.model, env.paths.models));
      } catch {
        return 'unresolved';
      }
    },
    // What validation knows of the UNet before loading it: its input's fixed dims (nodes/limits.ts).
    async infer(inputs, env) {
      if (inputs.model === undefined) return undefined;
      const dir = await resolve(inputs.model, env.paths.models);
      if (await isConvertibleSource(dir)) {
        const converted = convertedPath(dir, env.paths.models);
        if (await isUpToDate(dir, converted).catch(() => false)) return [await unetStandIn(converted)];
        const info = await sourceInfo(dir);
        return [{ sampleShape: ['batch', info.limits.latentChannels, 'frames', 'height', 'width'], ...info }];
      }
      return [await unetStandIn(dir)];
    },
    async run({ model, provider }, ctx) {
      const models = modelLoader(ctx);
      let dir = await resolve(model, ctx.paths.models);
      try {
        if (await isConvertibleSource(dir)) {
          // Converted once into the models folder's cache (progress in bytes written), reused after.
          dir = await ensureConverted(dir, ctx.paths.models, {
            signal: ctx.signal,
            onProgress: conversionProgress((done, total) => ctx.progress(done, total)),
          });
        }
        const m = await models.loadModel(dir, { provider });
        return { outputs: [m.unet, m.textEncoder, m.vae, m.schedulerConfig] };
      } catch (e) {
        if (opts.acceptPaths || !(e instanceof Error)) throw e;
        throw new Error(withoutPath(e.message, dir, model), { cause: e });
      }
    },
  });
}

/** The CLI's LoadVideoModel (in nodes/index.ts): accepts an absolute path the user types. */
export const loadVideoModelNode = makeLoadVideoModelNode({ acceptPaths: true });

/** The server's LoadVideoModel: model names from the models folder only, confined after links. */
export const loadVideoModelNodeForServer = makeLoadVideoModelNode({ acceptPaths: false });
