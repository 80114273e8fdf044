// Refuses prompts that could not fit in memory before they are queued. Generic over node types:
// any node whose literal inputs name a width and height (NoiseInit, and any later node that does)
// describes a clip of frames × height × width × batch; a LoopStart's `iterations` multiplies the
// clips. Linked values are unknown before running and are not counted.
import type { ApiPrompt, NodeErrors } from '../engine/types.ts';

export interface Limits {
  /** Max pixel-frames in one clip (frames × height × width × batch); its decoded IMAGE takes 12 bytes each. */
  maxClipPixels: number;
  /** Max iterations of one loop. */
  maxIterations: number;
  /** Max frames across all clips (frames × batch × product of loop iterations). */
  maxTotalFrames: number;
  /** Max nodes in one prompt. */
  maxNodes: number;
  /** Max prompts pending at once; more are refused (429) rather than filling the disk. */
  maxQueued: number;
}

export const defaultLimits: Limits = {
  // 2^28 pixel-frames ≈ 3 GiB of float32 RGB: e.g. 128 frames at 1024×2048, or 1024 frames at 512×512.
  maxClipPixels: 2 ** 28,
  maxIterations: 100_000,
  maxTotalFrames: 1_000_000,
  maxNodes: 10_000,
  maxQueued: 10_000,
};

function literalNumber(v: unknown): number | undefined {
  if (typeof v === 'number' && Number.isFinite(v)) return v;
  if (typeof v === 'string' && v.trim() !== '' && Number.isFinite(Number(v))) return Number(v);
  return undefined;
}

function pick(inputs: Record<string, unknown>, names: readonly string[]): number | undefined {
  for (const n of names) {
    const v = literalNumber(inputs[n]);
    if (v !== undefined) return v;
  }
  return undefined;
}

/** A limit error in node_errors shape, or undefined when the prompt fits. */
export function checkLimits(prompt: ApiPrompt, limits: Limits): NodeErrors | undefined {
  const errors: NodeErrors = {};
  const add = (id: string, input: string, value: number, message: string) => {
    errors[id] ??= { errors: [], dependent_outputs: [], class_type: prompt[id].class_type };
    errors[id].errors.push({
      type: 'custom_validation_failed',
      message,
      details: `${input}: ${message}`,
      extra_info: { input_name: input, received_value: value },
    });
  };
  const ids = Object.keys(prompt);
  if (ids.length > limits.maxNodes) {
    const id = ids[0];
    add(
      id,
      'prompt',
      ids.length,
      `The prompt has ${ids.length} nodes; the server accepts at most ${limits.maxNodes}.`,
    );
    return errors;
  }
  let loops = 1;
  let frameCount = 0;
  let clipNode: string | undefined;
  for (const id of ids) {
    const node = prompt[id];
    const inputs = node.inputs ?? {};
    const iterations = node.class_type === 'LoopStart' ? literalNumber(inputs.iterations) : undefined;
    if (iterations !== undefined) {
      if (iterations > limits.maxIterations) {
        add(
          id,
          'iterations',
          iterations,
          `${iterations} loop iterations exceed the server limit of ${limits.maxIterations}.`,
        );
      }
      loops *= Math.max(1, iterations);
    }
    const width = pick(inputs, ['width']);
    const height = pick(inputs, ['height']);
    if (width === undefined || height === undefined) continue;
    const frames = pick(inputs, ['frames', 'length', 'num_frames']) ?? 1;
    const batch = pick(inputs, ['batch_size', 'batch']) ?? 1;
    const pixels = width * height * frames * batch;
    if (pixels > limits.maxClipPixels) {
      const gib = ((pixels * 12) / 2 ** 30).toFixed(1);
      add(
        id,
        'frames',
        frames,
        `A clip of ${frames} frames × ${width}×${height} × batch ${batch} needs about ${gib} GiB as images; ` +
          `the server limit is ${limits.maxClipPixels} pixel-frames. Use fewer frames, a smaller size or a smaller batch.`,
      );
    }
    if (frames * batch > frameCount) {
      frameCount = frames * batch;
      clipNode = id;
    }
  }
  if (clipNode !== undefined && frameCount * loops > limits.maxTotalFrames) {
    add(
      clipNode,
      'frames',
      frameCount,
      `${frameCount} frames per clip × ${loops} clips = ${frameCount * loops} frames exceed the server limit of ` +
        `${limits.maxTotalFrames} frames per prompt.`,
    );
  }
  return Object.keys(errors).length > 0 ? errors : undefined;
}
