// The model handles that travel on UNET, TEXT_ENCODER and VAE sockets. Nodes call these; the
// runtime implements them over onnxruntime sessions that live in a worker thread.
import type { Tensor } from '../core/tensor-type.ts';

export interface UNetModel {
  readonly kind: 'unet';
  /** True when the ONNX batch axis is dynamic: CFG then runs as one batch of 2. */
  readonly dynamicBatch: boolean;
  /**
   * One denoiser call. sample [B,4,F,h,w], encoderHiddenStates [B,L,D]; returns the model output
   * (epsilon, v or sample, as the scheduler's prediction_type says) in float32, shape of sample.
   */
  predict(
    sample: Tensor,
    timestep: number,
    encoderHiddenStates: Tensor,
    signal?: AbortSignal,
  ): Promise<Tensor>;
}

export interface TextEncoderModel {
  readonly kind: 'text_encoder';
  /** Tokenizes (padded to model_max_length) and encodes: [1, L, D] float32. */
  encode(text: string, signal?: AbortSignal): Promise<Tensor>;
}

export interface VaeDecoderModel {
  readonly kind: 'vae';
  readonly scalingFactor: number;
  /**
   * latent [B,4,F,h,w] (already the sampler's z, not divided) → images [B·F, H, W, 3] in [0, 1],
   * decoded in chunks of framesPerBatch frames.
   */
  /** `out`: a buffer to write the frames into when it has their size (reused across clips). */
  decode(latent: Tensor, framesPerBatch: number, signal?: AbortSignal, out?: Float32Array): Promise<Tensor>;
}

/** A loaded model folder (diffusers ONNX layout). */
export interface VideoModel {
  readonly name: string;
  readonly dir: string;
  readonly unet: UNetModel;
  readonly textEncoder: TextEncoderModel;
  readonly vae: VaeDecoderModel;
  /** scheduler/scheduler_config.json as read (diffusers keys). */
  readonly schedulerConfig: Record<string, unknown>;
}
