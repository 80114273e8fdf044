// The model runtime: loads diffusers-layout ONNX model folders into the UNet / text encoder / VAE
// handles nodes use, with sessions living in one worker thread, created once per model file and
// provider, reused across runs, dropped by release() (POST /free).
import { statSync } from 'node:fs';
import path from 'node:path';
import { LAYOUT, inspectModelFolder, readJsonFile, readScalingFactor } from './folder.ts';
import { checkTextEncoder, checkUNet, checkVae, type Checked } from './io.ts';
import { makeTextEncoder, makeUNet, makeVaeDecoder } from './models.ts';
import {
  PROVIDERS,
  SessionPool,
  providerHint,
  type OpenSession,
  type Provider,
  type SessionPoolOptions,
} from './sessions.ts';
import { loadClipTokenizer } from './tokenizer.ts';
import type { VideoModel } from './types.ts';

export { inspectModelFolder, listModelFolders } from './folder.ts';
export { PROVIDERS, type Provider } from './sessions.ts';
export type { TextEncoderModel, UNetModel, VaeDecoderModel, VideoModel } from './types.ts';

export interface LoadOptions {
  /** Execution provider: cpu (default), cuda, tensorrt, webgpu. */
  provider?: string;
  /**
   * When the provider cannot load: true (default) warns once and runs on CPU; false throws.
   * Falling back keeps a workflow saved on a GPU machine runnable anywhere.
   */
  fallback?: boolean;
}

/** What a node needs of the runtime: a model folder's handles (sessions opened once, reused). */
export interface ModelLoader {
  loadModel(dir: string, opts?: LoadOptions): Promise<VideoModel>;
}

// The runtime reaches nodes through their RunContext, lent by whoever assembles an engine
// (`createEngine({ services: { models: runtime } })`): nodes never reach for a global runtime, and
// a host (a test, a remote worker) can lend another loader.
declare module '../engine/define.ts' {
  interface NodeServices {
    /** Loads model folders; absent when the host runs no model nodes. */
    readonly models?: ModelLoader;
  }
}

export interface ModelRuntime extends ModelLoader {
  stats(): { sessionsCreated: number; sessionsOpen: number };
  /** Drops every session; loaded models keep working and re-create sessions on next use. */
  release(): Promise<void>;
  /** Stops the worker thread. */
  close(): Promise<void>;
  /** Provider problems met so far (each also logged once as a warning). */
  readonly warnings: readonly string[];
}

function isProvider(p: string): p is Provider {
  return (PROVIDERS as readonly string[]).includes(p);
}

/** mtime and size of every file the layout names (absent ones too): changes when the folder does. */
function folderStamp(root: string): string {
  return Object.values(LAYOUT)
    .map((rel) => {
      try {
        const st = statSync(path.join(root, rel));
        return `${st.mtimeMs}:${st.size}`;
      } catch {
        return '-';
      }
    })
    .join('|');
}

function unwrap<T>(rel: string, checked: Checked<T>): T {
  if (!checked.ok) throw new Error(checked.problems.map((p) => `${rel}: ${p}`).join('\n'));
  return checked.io;
}

export function createRuntime(opts: SessionPoolOptions = {}): ModelRuntime {
  const pool = new SessionPool(opts);
  const warnings: string[] = [];
  /** Providers that failed to load, with the message; later models go straight to the fallback. */
  const broken = new Map<Provider, string>();

  async function openWith(file: string, provider: Provider, fallback: boolean): Promise<OpenSession> {
    const known = broken.get(provider);
    if (known === undefined) {
      try {
        return await pool.open(file, provider);
      } catch (e) {
        if (provider === 'cpu') throw e;
        const reason = e instanceof Error ? e.message.split('\n')[0] : String(e);
        const msg = `execution provider "${provider}" could not be loaded (${reason}). ${providerHint(provider)}.`;
        broken.set(provider, msg);
        if (fallback) {
          warnings.push(`${msg} Running on cpu instead.`);
          console.warn(`rdflow: ${msg} Running on cpu instead.`);
        }
      }
    }
    if (!fallback) throw new Error(broken.get(provider));
    return pool.open(file, 'cpu');
  }

  /** Loaded models by folder + provider + fallback, valid while the folder's files are unchanged. */
  const models = new Map<string, { stamp: string; model: Promise<VideoModel> }>();

  async function load(root: string, provider: Provider, fallback: boolean): Promise<VideoModel> {
    const problems = await inspectModelFolder(root);
    if (problems.length > 0) throw new Error(`model folder ${root}:\n${problems.join('\n')}`);
    const open = async (rel: string) => openWith(path.join(root, rel), provider, fallback);
    const [textSession, unetSession, vaeSession] = [
      await open(LAYOUT.textEncoder),
      await open(LAYOUT.unet),
      await open(LAYOUT.vae),
    ];
    // The sessions' own metadata decides names, dtypes and shapes.
    const textIO = unwrap(LAYOUT.textEncoder, checkTextEncoder(textSession.io));
    const unetIO = unwrap(LAYOUT.unet, checkUNet(unetSession.io));
    const vaeIO = unwrap(LAYOUT.vae, checkVae(vaeSession.io));
    const tokenizer = await loadClipTokenizer(path.join(root, LAYOUT.tokenizerDir));
    const schedulerConfig = (await readJsonFile(root, LAYOUT.scheduler)) as Record<string, unknown>;
    const scalingFactor = await readScalingFactor(root);
    const name = path.basename(root);
    return {
      name,
      dir: root,
      unet: makeUNet(pool, unetSession, unetIO, `${name}/${LAYOUT.unet}`),
      textEncoder: makeTextEncoder(pool, textSession, textIO, tokenizer, `${name}/${LAYOUT.textEncoder}`),
      vae: makeVaeDecoder(pool, vaeSession, vaeIO, scalingFactor, `${name}/${LAYOUT.vae}`),
      schedulerConfig,
    };
  }

  return {
    warnings,
    async loadModel(dir: string, opts: LoadOptions = {}): Promise<VideoModel> {
      const provider = opts.provider ?? 'cpu';
      if (!isProvider(provider)) {
        throw new Error(`unknown execution provider "${provider}"; use one of ${PROVIDERS.join(', ')}`);
      }
      const root = path.resolve(dir);
      const fallback = opts.fallback ?? true;
      // The same handles again while nothing changed: no re-validation, no tokenizer rebuild.
      const id = `${provider}|${fallback}|${root}`;
      const stamp = folderStamp(root);
      const hit = models.get(id);
      if (hit && hit.stamp === stamp) return hit.model;
      const model = load(root, provider, fallback);
      models.set(id, { stamp, model });
      model.catch(() => {
        if (models.get(id)?.model === model) models.delete(id);
      });
      return model;
    },
    stats: () => pool.stats(),
    release: () => pool.release(),
    close: () => pool.close(),
  };
}

let runtime: ModelRuntime | null = null;

/**
 * The process's runtime (one worker thread, one session cache). Only entry points call this (the
 * CLI, where startServer assembles the server, bench, scripts, tests); they lend it to the nodes
 * of the engines they create.
 */
export function getRuntime(): ModelRuntime {
  runtime ??= createRuntime();
  return runtime;
}
