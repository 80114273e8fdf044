// Procedural frames of the demo's training clips: one flat-coloured object over a vertical
// gradient, drawn at 256×256 with analytic anti-aliasing. Planes are row-major, values in [-1, 1].
import { IMAGE_SIZE } from './vae.ts';
import type { Rgb, ShapeName } from './vocab.ts';

const BACKGROUND_TOP: Rgb = [0.07, 0.09, 0.24];
const BACKGROUND_BOTTOM: Rgb = [0.36, 0.33, 0.42];
/** Ball radius and square half-side in pixels. */
export const OBJECT_RADIUS = 24;

export function backgroundPlanes(): Float64Array[] {
  return [0, 1, 2].map((c) => {
    const plane = new Float64Array(IMAGE_SIZE * IMAGE_SIZE);
    for (let r = 0; r < IMAGE_SIZE; r++) {
      const f = (r + 0.5) / IMAGE_SIZE;
      const v = 2 * (BACKGROUND_TOP[c] * (1 - f) + BACKGROUND_BOTTOM[c] * f) - 1;
      plane.fill(v, r * IMAGE_SIZE, (r + 1) * IMAGE_SIZE);
    }
    return plane;
  });
}

/** Fraction of pixel (x, y) (centre coordinates) the shape covers. */
function coverage(shape: ShapeName, dx: number, dy: number): number {
  if (shape === 'ball') return Math.min(Math.max(OBJECT_RADIUS - Math.hypot(dx, dy) + 0.5, 0), 1);
  const cx = Math.min(Math.max(OBJECT_RADIUS - Math.abs(dx) + 0.5, 0), 1);
  const cy = Math.min(Math.max(OBJECT_RADIUS - Math.abs(dy) + 0.5, 0), 1);
  return cx * cy;
}

/**
 * The object's contribution over the background: frame − background, per channel, zero outside
 * the object. Balls get a soft highlight toward the top left so they read as balls.
 */
export function objectPlanes(
  shape: ShapeName,
  colour: Rgb,
  cx: number,
  cy: number,
  bg: readonly Float64Array[],
): Float64Array[] {
  const planes = [0, 1, 2].map(() => new Float64Array(IMAGE_SIZE * IMAGE_SIZE));
  const reach = OBJECT_RADIUS + 1;
  const r0 = Math.max(0, Math.floor(cy - reach));
  const r1 = Math.min(IMAGE_SIZE - 1, Math.ceil(cy + reach));
  const c0 = Math.max(0, Math.floor(cx - reach));
  const c1 = Math.min(IMAGE_SIZE - 1, Math.ceil(cx + reach));
  for (let r = r0; r <= r1; r++) {
    for (let c = c0; c <= c1; c++) {
      const dx = c + 0.5 - cx;
      const dy = r + 0.5 - cy;
      const cover = coverage(shape, dx, dy);
      if (cover === 0) continue;
      const shade =
        shape === 'ball'
          ? 0.72 + 0.28 * Math.max(0, 1 - Math.hypot(dx + 8, dy + 8) / (1.5 * OBJECT_RADIUS))
          : 1;
      for (let ch = 0; ch < 3; ch++) {
        const i = r * IMAGE_SIZE + c;
        const value = 2 * Math.min(1, colour[ch] * shade) - 1;
        planes[ch][i] = cover * (value - bg[ch][i]);
      }
    }
  }
  return planes;
}
