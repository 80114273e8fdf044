// The demo VAE: a fixed linear map between 4×32×32 latents and 3×256×256 images in [-1, 1].
// Decoder: mix the 4 latent channels to RGB with MIX (4×3, orthonormal columns), then bilinear ×8
// upsampling (half-pixel centres, edges clamped, as PyTorch's align_corners=False), done as two
// matrix products with UP (256×32). Encoder: the decoder's least-squares inverse, so decoding an
// encoded image gives the closest image the decoder can make. Raw latents here are unscaled; the
// sampler's z is raw · scaling_factor.

export const LATENT_CHANNELS = 4;
export const LATENT_SIZE = 32;
export const IMAGE_SIZE = 256;
const FACTOR = IMAGE_SIZE / LATENT_SIZE;

/** Latent channel l = Σ_c MIX[l][c] · rgb_c; rgb_c = Σ_l MIX[l][c] · latent_l (MIXᵀ·MIX = I). */
export const MIX: readonly (readonly [number, number, number])[] = [
  [0.5, 0.5, 0.5],
  [-0.5, 0.5, -0.5],
  [0.5, -0.5, -0.5],
  [-0.5, -0.5, 0.5],
];

/** UP[o][j]: weight of latent row j in image row o (bilinear, half-pixel, clamped). Row-major 256×32. */
export function upsampleMatrix(): Float64Array {
  const up = new Float64Array(IMAGE_SIZE * LATENT_SIZE);
  for (let o = 0; o < IMAGE_SIZE; o++) {
    const src = Math.min(Math.max((o + 0.5) / FACTOR - 0.5, 0), LATENT_SIZE - 1);
    const j0 = Math.floor(src);
    const j1 = Math.min(j0 + 1, LATENT_SIZE - 1);
    const f = src - j0;
    up[o * LATENT_SIZE + j0] += 1 - f;
    up[o * LATENT_SIZE + j1] += f;
  }
  return up;
}

/** Solves the symmetric positive definite system G·X = B (G n×n, B n×m) by Cholesky. */
function solveSpd(g: Float64Array, b: Float64Array, n: number, m: number): Float64Array {
  const l = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      let s = g[i * n + j];
      for (let k = 0; k < j; k++) s -= l[i * n + k] * l[j * n + k];
      l[i * n + j] = i === j ? Math.sqrt(s) : s / l[j * n + j];
    }
  }
  const x = Float64Array.from(b);
  for (let c = 0; c < m; c++) {
    for (let i = 0; i < n; i++) {
      let s = x[i * m + c];
      for (let k = 0; k < i; k++) s -= l[i * n + k] * x[k * m + c];
      x[i * m + c] = s / l[i * n + i];
    }
    for (let i = n - 1; i >= 0; i--) {
      let s = x[i * m + c];
      for (let k = i + 1; k < n; k++) s -= l[k * n + i] * x[k * m + c];
      x[i * m + c] = s / l[i * n + i];
    }
  }
  return x;
}

/** DOWN = (UPᵀ·UP)⁻¹·UPᵀ, row-major 32×256: the least-squares inverse of UP along one axis. */
export function downsampleMatrix(up: Float64Array = upsampleMatrix()): Float64Array {
  const n = LATENT_SIZE;
  const gram = new Float64Array(n * n);
  for (let o = 0; o < IMAGE_SIZE; o++) {
    for (let i = 0; i < n; i++) {
      const a = up[o * n + i];
      if (a === 0) continue;
      for (let j = 0; j < n; j++) gram[i * n + j] += a * up[o * n + j];
    }
  }
  const upT = new Float64Array(n * IMAGE_SIZE);
  for (let o = 0; o < IMAGE_SIZE; o++) for (let i = 0; i < n; i++) upT[i * IMAGE_SIZE + o] = up[o * n + i];
  return solveSpd(gram, upT, n, IMAGE_SIZE);
}

/**
 * Least-squares fit of one image plane (256×256, row-major) by UP·Y·UPᵀ: Y = DOWN·X·DOWNᵀ.
 * Only the bounding box of the plane's non-zero pixels is visited (objects are small).
 */
export function fitPlane(plane: Float64Array, down: Float64Array): Float64Array {
  const S = IMAGE_SIZE;
  const n = LATENT_SIZE;
  let r0 = S;
  let r1 = -1;
  let c0 = S;
  let c1 = -1;
  for (let r = 0; r < S; r++) {
    for (let c = 0; c < S; c++) {
      if (plane[r * S + c] !== 0) {
        if (r < r0) r0 = r;
        if (r > r1) r1 = r;
        if (c < c0) c0 = c;
        if (c > c1) c1 = c;
      }
    }
  }
  const y = new Float64Array(n * n);
  if (r1 < 0) return y;
  // t[r][j] = Σ_c X[r][c] · DOWN[j][c] over the box.
  const t = new Float64Array(S * n);
  for (let r = r0; r <= r1; r++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let c = c0; c <= c1; c++) s += plane[r * S + c] * down[j * S + c];
      t[r * n + j] = s;
    }
  }
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let r = r0; r <= r1; r++) s += down[i * S + r] * t[r * n + j];
      y[i * n + j] = s;
    }
  }
  return y;
}

/** Encodes an RGB image [3,256,256] in [-1,1] to a raw latent [4,32,32] (float64). */
export function encodeImage(rgb: readonly Float64Array[], down: Float64Array): Float64Array {
  const hw = LATENT_SIZE * LATENT_SIZE;
  const fitted = rgb.map((plane) => fitPlane(plane, down));
  const z = new Float64Array(LATENT_CHANNELS * hw);
  for (let l = 0; l < LATENT_CHANNELS; l++) {
    for (let c = 0; c < 3; c++) {
      const w = MIX[l][c];
      const src = fitted[c];
      for (let p = 0; p < hw; p++) z[l * hw + p] += w * src[p];
    }
  }
  return z;
}

/**
 * Decodes raw latent frames [n,4,32,32] (already divided by the scaling factor) to images
 * [n,3,256,256] in about [-1, 1]: the same map as the ONNX decoder, for tests.
 */
export function decodeLatents(latents: Float32Array, frames: number): Float32Array {
  const up = upsampleMatrix();
  const n = LATENT_SIZE;
  const S = IMAGE_SIZE;
  const hw = n * n;
  const out = new Float32Array(frames * 3 * S * S);
  const mixed = new Float64Array(hw);
  const t = new Float64Array(S * n);
  for (let f = 0; f < frames; f++) {
    for (let c = 0; c < 3; c++) {
      mixed.fill(0);
      for (let l = 0; l < LATENT_CHANNELS; l++) {
        const w = MIX[l][c];
        const base = (f * LATENT_CHANNELS + l) * hw;
        for (let p = 0; p < hw; p++) mixed[p] += w * latents[base + p];
      }
      // t = UP · mixed (256×32), then out = t · UPᵀ.
      for (let o = 0; o < S; o++) {
        for (let j = 0; j < n; j++) {
          let s = 0;
          for (let k = 0; k < n; k++) s += up[o * n + k] * mixed[k * n + j];
          t[o * n + j] = s;
        }
      }
      const base = (f * 3 + c) * S * S;
      for (let o = 0; o < S; o++) {
        for (let q = 0; q < S; q++) {
          let s = 0;
          for (let j = 0; j < n; j++) s += t[o * n + j] * up[q * n + j];
          out[base + o * S + q] = s;
        }
      }
    }
  }
  return out;
}
