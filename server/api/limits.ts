// The server's limits on what one prompt may ask for. The engine checks the resource limits on the
// values nodes actually receive (their declared cost(): a clip's pixel-frames, a loop's iterations,
// the frames of the whole prompt), at validation where the values can be computed before the run
// and right before a node runs otherwise; engineLimits() hands them over. What only the server
// counts (nodes per prompt, prompts in the queue) is checked here.
import type { ResourceLimits } from '../engine/define.ts';
import type { ApiPrompt, NodeErrors } from '../engine/types.ts';

export interface Limits {
  /** Max pixel-frames in one clip (frames × height × width × batch); its decoded IMAGE takes 12 bytes each. */
  maxClipPixels: number;
  /** Max iterations of one loop. */
  maxIterations: number;
  /** Max frames across all clips (a node's frames per clip × the iterations of the loops around it). */
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

/** The limits the engine checks on node values (createEngine's `limits`). */
export function engineLimits(limits: Limits): ResourceLimits {
  return {
    clipPixels: limits.maxClipPixels,
    loopIterations: limits.maxIterations,
    totalFrames: limits.maxTotalFrames,
    source: 'server',
  };
}

/** A limit error in node_errors shape for what the engine does not see, or undefined when the prompt fits. */
export function checkLimits(prompt: ApiPrompt, limits: Limits): NodeErrors | undefined {
  const ids = Object.keys(prompt);
  if (ids.length <= limits.maxNodes) return undefined;
  const id = ids[0];
  const message = `The prompt has ${ids.length} nodes; the server accepts at most ${limits.maxNodes}.`;
  return {
    [id]: {
      errors: [
        {
          type: 'custom_validation_failed',
          message,
          details: `prompt: ${message}`,
          extra_info: { input_name: 'prompt', received_value: ids.length },
        },
      ],
      dependent_outputs: [],
      class_type: prompt[id].class_type,
    },
  };
}
