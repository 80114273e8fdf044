// PromptSchedule: a prompt per scene of a long video. Inside the loop, it gives the sampler the
// conditioning of the current clip from a schedule such as
//   0: a red ball bouncing
//   4: the ball rolls into the sea
// optionally blending the two scenes' text embeddings linearly over `blend_clips` clips after each
// boundary. Its cache signature is only the current clip's prompts and weights, so editing a later
// scene keeps the clips before it (cached, and resumable).
import { defineNode, input, output, type ValidationIssue } from '../server/engine/define.ts';
import type { TextEncoderModel } from '../server/runtime/types.ts';
import type { Tensor } from '../server/core/tensor-type.ts';

export interface Scene {
  /** 1-based line of the schedule text, for messages. */
  line: number;
  /** First clip (0-based) of the scene. */
  start: number;
  text: string;
}

/** One prompt of a clip's conditioning and its weight (the weights of a clip add up to 1). */
export interface WeightedPrompt {
  text: string;
  weight: number;
}

const LINE = /^\s*(-?\d+)\s*:\s*(.*?)\s*$/;

function quote(s: string): string {
  const t = s.trim();
  return t.length > 40 ? `"${t.slice(0, 37)}..."` : `"${t}"`;
}

/**
 * Reads a schedule: one `CLIP: prompt` per line (blank lines and `#` comments skipped). Problems —
 * a line without `N:`, an empty prompt, a first scene not at clip 0, unsorted or repeated clips,
 * a negative clip, a clip at or past `clips` (when known), a scene starting before the previous
 * boundary's blend has ended — each name the line.
 */
export function parseSchedule(
  text: string,
  opts: { clips?: number; blend?: number } = {},
): { scenes: Scene[]; problems: string[] } {
  const scenes: Scene[] = [];
  const problems: string[] = [];
  const blend = opts.blend ?? 0;
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i];
    if (raw.trim() === '' || raw.trim().startsWith('#')) continue;
    const at = `line ${i + 1} (${quote(raw)})`;
    const m = LINE.exec(raw);
    if (!m) {
      problems.push(`${at}: expected "CLIP: prompt", such as "0: a red ball bouncing"`);
      continue;
    }
    const start = Number(m[1]);
    if (m[2] === '') problems.push(`${at}: the prompt is empty`);
    if (start < 0) {
      problems.push(`${at}: clip ${start} is negative; clips count from 0`);
      continue;
    }
    if (!Number.isSafeInteger(start)) {
      problems.push(`${at}: clip ${m[1]} is too large`);
      continue;
    }
    const prev = scenes[scenes.length - 1];
    if (prev === undefined && start !== 0) {
      problems.push(`${at}: the first scene must start at clip 0, not ${start}`);
    } else if (prev !== undefined && start === prev.start) {
      problems.push(`${at}: clip ${start} is repeated (line ${prev.line} starts there too)`);
      continue;
    } else if (prev !== undefined && start < prev.start) {
      problems.push(
        `${at}: clip ${start} comes after clip ${prev.start} of line ${prev.line}; sort the scenes by clip`,
      );
      continue;
    } else if (prev !== undefined && scenes.length > 1 && start - prev.start < blend) {
      problems.push(
        `${at}: the scene starts ${start - prev.start} clip(s) after line ${prev.line}, inside its ${blend}-clip blend`,
      );
    }
    if (opts.clips !== undefined && start >= opts.clips) {
      problems.push(
        `${at}: clip ${start} is beyond the video's ${opts.clips} clips (0 to ${opts.clips - 1})`,
      );
    }
    scenes.push({ line: i + 1, start, text: m[2] });
  }
  if (scenes.length === 0 && problems.length === 0)
    problems.push('the schedule has no scene ("0: a prompt")');
  return { scenes, problems };
}

/**
 * The prompts of clip `clip` and their weights: the scene it is in, or during the `blend` clips
 * after a boundary, the previous and the new scene with the new one's weight rising
 * (j + 1) / (blend + 1) over the blend's clips j = 0 … blend - 1.
 */
export function clipPrompts(scenes: readonly Scene[], blend: number, clip: number): WeightedPrompt[] {
  let s = 0;
  while (s + 1 < scenes.length && scenes[s + 1].start <= clip) s++;
  const j = clip - scenes[s].start;
  if (s === 0 || j >= blend) return [{ text: scenes[s].text, weight: 1 }];
  const w = (j + 1) / (blend + 1);
  return [
    { text: scenes[s - 1].text, weight: 1 - w },
    { text: scenes[s].text, weight: w },
  ];
}

/** Σ weight · embedding, element by element (all embeddings the same shape). */
export function blendEmbeddings(parts: readonly { tensor: Tensor; weight: number }[]): Tensor {
  if (parts.length === 1) return parts[0].tensor;
  const shape = parts[0].tensor.shape;
  const out = new Float32Array(parts[0].tensor.data.length);
  for (const { tensor, weight } of parts) {
    if (tensor.shape.length !== shape.length || tensor.shape.some((d, i) => d !== shape[i])) {
      throw new Error(
        `embeddings to blend differ in shape: [${shape.join(',')}] and [${tensor.shape.join(',')}]`,
      );
    }
    const d = tensor.data;
    for (let i = 0; i < out.length; i++) out[i] += weight * d[i];
  }
  return { data: out, shape: [...shape] };
}

function issuesOf(problems: string[]): ValidationIssue[] {
  return problems.map((message) => ({ input: 'schedule', message }));
}

export const promptScheduleNode = defineNode({
  name: 'PromptSchedule',
  displayName: 'Prompt Schedule',
  category: 'rdflow/conditioning',
  description:
    'A prompt per scene of a long video: gives the sampler the conditioning of the current clip ' +
    '(link clip_index to the Loop Start index) from lines "CLIP: prompt", blending the text ' +
    'embeddings over blend_clips clips after each boundary.',
  inputs: {
    required: {
      text_encoder: input.link<TextEncoderModel>('TEXT_ENCODER'),
      schedule: input.string({
        default: '0: a red ball moving right\n3: a blue ball moving left',
        multiline: true,
        tooltip: 'One "CLIP: prompt" per line, clips from 0 in increasing order.',
      }),
      clip_index: input.int({
        default: 0,
        min: 0,
        max: 100_000,
        tooltip: 'The current clip: link the Loop Start index.',
      }),
      blend_clips: input.int({
        default: 0,
        min: 0,
        max: 1000,
        tooltip: 'Clips after each boundary over which the embeddings blend from the old scene to the new.',
      }),
      clips: input.int({
        default: 0,
        min: 0,
        max: 100_000,
        tooltip: 'Clips in the video, to check the schedule against before the run; 0: the loop length.',
      }),
    },
  },
  outputs: [output<Tensor>('CONDITIONING')],
  validate({ schedule, blend_clips, clips }) {
    if (schedule === undefined) return [];
    const { problems } = parseSchedule(schedule, {
      blend: blend_clips ?? 0,
      clips: clips !== undefined && clips > 0 ? clips : undefined,
    });
    return issuesOf(problems);
  },
  signature({ schedule, blend_clips, clip_index, clips }) {
    if (schedule === undefined || clip_index === undefined)
      return { schedule, blend_clips, clip_index, clips };
    const { scenes, problems } = parseSchedule(schedule, { blend: blend_clips ?? 0 });
    if (problems.length > 0) return { schedule, blend_clips, clip_index, clips };
    return clipPrompts(scenes, blend_clips ?? 0, clip_index);
  },
  async run({ text_encoder, schedule, clip_index, blend_clips, clips }, ctx) {
    // The loop's length is known now: a scene past it is an error before any clip is sampled.
    const total = clips > 0 ? clips : ctx.loop?.iterations;
    const { scenes, problems } = parseSchedule(schedule, { blend: blend_clips, clips: total });
    if (problems.length > 0) throw new Error(`input "schedule": ${problems.join('; ')}`);
    const prompts = clipPrompts(scenes, blend_clips, clip_index);
    // Each scene's prompt is encoded once per run, whatever the number of its clips.
    const cache = (ctx.state.embeddings ??= new Map<string, Tensor>()) as Map<string, Tensor>;
    const parts: { tensor: Tensor; weight: number }[] = [];
    for (const { text, weight } of prompts) {
      let tensor = cache.get(text);
      if (tensor === undefined) {
        tensor = await text_encoder.encode(text, ctx.signal);
        cache.set(text, tensor);
      }
      parts.push({ tensor, weight });
    }
    // Only the scenes still to come stay cached.
    for (const text of cache.keys()) if (!prompts.some((p) => p.text === text)) cache.delete(text);
    return { outputs: [blendEmbeddings(parts)] };
  },
});
