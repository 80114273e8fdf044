// The one tensor type passed between nodes: a dense float32 buffer and its shape (C order).
// Video latents are [B, C, F, H, W] with the frame axis 2; images are [F, H, W, 3] in [0, 1].
export interface Tensor {
  readonly data: Float32Array;
  readonly shape: readonly number[];
}
