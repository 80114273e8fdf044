// DDIMSampler: one clip of the VidRD loop. With no `previous` record it is plain DDIM with
// classifier-free guidance; with one, DSG guides the first M frames from the previous clip's
// trajectory. Returns the clip's latent and the memory-lean record the next clip reads.
import { defineNode, input, output } from '../server/engine/define.ts';
import type { UNetModel } from '../server/runtime/types.ts';
import { ddimTimesteps, parseSchedulerConfig, type DdimConfig } from '../server/core/ddim.ts';
import { sampleClip } from '../server/core/sampler.ts';
import type { Tensor } from '../server/core/tensor-type.ts';
import type { DsgRecord } from '../server/core/vidrd.ts';
import { MAX_SEED } from './noise-init.ts';
import { requireTensor } from './checks.ts';
import {
  familyLimitIssues,
  modelFitIssues,
  referenceFrameIssues,
  sameShape,
  shapeOf,
  unetLimits,
  unetSampleShape,
} from './limits.ts';

/** Checks `steps` against the scheduler before any model call, naming the input. */
function checkSteps(scheduler: DdimConfig, steps: number): void {
  try {
    ddimTimesteps(scheduler, steps);
  } catch (e) {
    throw new Error(`input "steps": ${(e as Error).message}`, { cause: e });
  }
}

/** Links from LoopStart are typed '*': a record, or nothing (the first clip), must be what arrived. */
function previousRecord(v: unknown): DsgRecord | undefined {
  if (v === undefined || v === null) return undefined;
  if ((v as Partial<DsgRecord>).kind !== 'dsg-record') {
    throw new Error('input "previous": expected a DSG_RECORD from a previous DDIMSampler');
  }
  return v as DsgRecord;
}

export const ddimSamplerNode = defineNode({
  name: 'DDIMSampler',
  displayName: 'DDIM Sampler (VidRD)',
  category: 'rdflow/sampling',
  description:
    'DDIM with classifier-free guidance; with a previous clip’s record, staged guidance (DSG) on the first M frames.',
  inputs: {
    required: {
      unet: input.link<UNetModel>('UNET'),
      scheduler: input.link<Record<string, unknown>>('SCHEDULER'),
      positive: input.link<Tensor>('CONDITIONING'),
      negative: input.link<Tensor>('CONDITIONING'),
      noise: input.link<Tensor>('NOISE'),
      steps: input.int({ default: 50, min: 1, max: 1000, tooltip: 'DDIM steps S.' }),
      cfg: input.float({
        default: 10,
        min: 0,
        max: 100,
        step: 0.1,
        round: 0.01,
        tooltip: 'Guidance scale w.',
      }),
      eta: input.float({ default: 0, min: 0, max: 1, step: 0.01, tooltip: '0 = deterministic DDIM.' }),
      seed: input.int({
        default: 0,
        min: 0,
        max: MAX_SEED,
        controlAfterGenerate: true,
        tooltip: 'Seeds the step noise when eta > 0 (step i uses seed + i).',
      }),
      beta: input.float({ default: 0.4, min: 0, max: 1, step: 0.05, tooltip: 'DSG strength β.' }),
      reference_frames: input.int({ default: 4, min: 0, max: 1024, tooltip: 'Frames guided by DSG (M).' }),
    },
    optional: {
      previous: input.link<DsgRecord>('DSG_RECORD', {
        tooltip: 'The previous clip’s record (none: first clip).',
      }),
    },
  },
  outputs: [output<Tensor>('LATENT'), output<DsgRecord>('DSG_RECORD')],
  // Before the run: M within the clip, and the clip in a size and length the model's UNet takes.
  validate({ noise, reference_frames, unet }) {
    const issues = referenceFrameIssues(noise, reference_frames);
    const shape = shapeOf(noise);
    const sample = unetSampleShape(unet);
    if (shape?.length === 5 && sample?.length === 5) {
      const family = familyLimitIssues('noise', shape, unetLimits(unet));
      // Family limits say it in the model's terms; the ONNX dims are the fallback for other exports.
      issues.push(...(family.length > 0 ? family : modelFitIssues('noise', shape, sample)));
    }
    return issues;
  },
  infer: ({ noise }) => [sameShape(noise), undefined],
  async run(inp, ctx) {
    const { unet } = inp;
    const noise = requireTensor(inp.noise, 'noise', 5, 'a latent [B,C,N,h,w]');
    if (inp.reference_frames > noise.shape[2]) {
      throw new Error(
        `input "reference_frames": ${inp.reference_frames} exceeds the ${noise.shape[2]} frames of the noise`,
      );
    }
    const scheduler = parseSchedulerConfig(inp.scheduler);
    checkSteps(scheduler, inp.steps);
    const { latent, record } = await sampleClip({
      noise,
      positive: requireTensor(inp.positive, 'positive', 3, 'conditioning [1,L,D]'),
      negative: requireTensor(inp.negative, 'negative', 3, 'conditioning [1,L,D]'),
      steps: inp.steps,
      cfg: inp.cfg,
      eta: inp.eta,
      seed: BigInt(inp.seed),
      scheduler,
      previous: previousRecord(inp.previous),
      beta: inp.beta,
      referenceFrames: inp.reference_frames,
      denoise: (sample, t, hidden, signal) => unet.predict(sample, t, hidden, signal),
      dynamicBatch: unet.dynamicBatch,
      signal: ctx.signal,
      onStep: (i, S) => ctx.progress(i + 1, S),
    });
    return { outputs: [latent, record] };
  },
});
