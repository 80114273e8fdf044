// What a conversion does, independent of the model family: the components to build (each opens
// its weights and builds a Net from its config), files to copy or write, and the source files whose
// sizes and mtimes identify the source. A family module (server/runtime/families/*) makes the plan.
import type { ModelLimits } from '../families/types.ts';
import type { WeightSource } from '../weights/types.ts';
import type { Net, WeightDType } from './net.ts';

/** One ONNX component of the output folder. */
export interface ComponentJob {
  /** Output subfolder: text_encoder, unet or vae_decoder. */
  readonly dir: 'text_encoder' | 'unet' | 'vae_decoder';
  /** What the summary and errors call it, e.g. "unet (ModelT2V.pth: unet.*)". */
  readonly label: string;
  open(): Promise<WeightSource>;
  /** Builds the graph over `source`; notes go into the summary (e.g. keys deliberately skipped). */
  build(source: WeightSource, dtype: WeightDType): { net: Net; notes: string[] };
}

export interface ConversionPlan {
  /** Family id (modelscope, vidrd). */
  readonly family: string;
  readonly source: string;
  readonly components: readonly ComponentJob[];
  /** Source files copied as they are: absolute `from`, `to` relative to the output folder. */
  readonly copies: readonly { from: string; to: string }[];
  /** JSON files written into the output folder (relative path → value). */
  readonly json: Readonly<Record<string, unknown>>;
  /** Notes for the summary (e.g. how the VAE is decoded). */
  readonly notes: readonly string[];
  /** What the converted model can generate (recorded in model_index.json). */
  readonly limits: ModelLimits;
  /** Source files whose size and mtime identify this source (configs and weights). */
  readonly stampFiles: readonly string[];
}
