// A model family: how its source checkpoints are recognised and converted. Adding a family means
// one folder under server/runtime/families/ with a module of this shape, listed in index.ts.
import type { ConversionPlan } from '../convert/plan.ts';

/** What a model can generate: checked at validation, shown by `rdflow models` and /object_info. */
export interface ModelLimits {
  /** Channels of the UNet's latent. */
  readonly latentChannels: number;
  /** Width and height must be multiples of this many pixels. */
  readonly sizeMultiple: number;
  /** Frames per clip the model takes. */
  readonly frames: { readonly min: number; readonly max?: number };
  /** Fixed width/height in pixels, when the model takes only one size. */
  readonly size?: { readonly width: number; readonly height: number };
}

export interface ModelFamily {
  /** Short id recorded in converted folders (modelscope, vidrd). */
  readonly id: string;
  /** What users call it, with the public checkpoints it covers. */
  readonly label: string;
  /** Whether `dir` is a source checkpoint of this family (reads only small files). */
  recognise(dir: string): Promise<boolean>;
  /** The conversion of `dir` (configs parsed and checked; weights not read yet). */
  plan(dir: string): Promise<ConversionPlan>;
  /** What a converted model of this family can do, from its unet/config.json. */
  limits(unetConfig: Record<string, unknown>): ModelLimits;
}
