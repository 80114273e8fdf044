// VideoWrite: appends each decoded clip to one video file as it arrives. Inside a loop body it runs
// once per iteration: the writer opens on the first call (kept in ctx.state), every clip is piped to
// the encoder, and the last iteration finishes the file (temp name → final name). A run that ends
// any other way aborts the writer, so no partial file is left behind.
import path from 'node:path';
import { defineNode, input, type RunContext, type UiOutput } from '../server/engine/define.ts';
import type { Tensor } from '../server/core/tensor-type.ts';
import { assertStillInside } from '../server/runtime/video/paths.ts';
import { requireTensor } from './checks.ts';
import { fileNameIssues } from './limits.ts';
import { rgb8Codec } from '../server/runtime/video/rgb-codec.ts';
import {
  checkFilenamePrefix,
  openVideoWriter,
  resolveOutputPath,
  supportedFormats,
  validateVideoOptions,
  VIDEO_FORMATS,
  type VideoFormat,
  type VideoWriter,
} from '../server/runtime/video/index.ts';

/** Mime-like labels as ComfyUI video nodes report them to clients. */
const FORMAT_LABEL: Record<VideoFormat, string> = {
  mp4: 'video/h264-mp4',
  gif: 'image/gif',
  webp: 'image/webp',
  png: 'image/png',
};

interface WriterState {
  writer: VideoWriter;
  /** The final file's path (its folder is checked again before the rename). */
  target: string;
  /** Finished or aborted: nothing is left to clean up. */
  closed: boolean;
}

const STATE_KEY = 'videoWriter';

function isVideoFormat(v: string): v is VideoFormat {
  return (VIDEO_FORMATS as readonly string[]).includes(v);
}

/** A bad filename_prefix (absolute, "..", empty) is reported before anything runs. */
export function prefixIssues(prefix: string | undefined): { input: string; message: string }[] {
  if (prefix === undefined) return [];
  try {
    checkFilenamePrefix(prefix);
    return [];
  } catch (e) {
    return [{ input: 'filename_prefix', message: e instanceof Error ? e.message : String(e) }];
  }
}

/** ComfyUI's file entry for one written file: name and folder relative to the output directory. */
function fileEntry(outputDir: string, file: string, format: VideoFormat): Record<string, string> {
  const rel = path.relative(outputDir, file).split(path.sep).join('/');
  const slash = rel.lastIndexOf('/');
  return {
    filename: rel.slice(slash + 1),
    subfolder: slash < 0 ? '' : rel.slice(0, slash),
    type: 'output',
    format: FORMAT_LABEL[format],
  };
}

/**
 * The filesystem refusing the output folder (read-only, not a folder, gone, full) is told as what
 * it is, naming the prefix; the node fails, so hosts report VideoWrite as the failing node.
 */
function unwritable(e: unknown, prefix: string): Error {
  const err = e as NodeJS.ErrnoException & { cause?: NodeJS.ErrnoException };
  const code = err.code ?? err.cause?.code;
  if (typeof code !== 'string') return e instanceof Error ? e : new Error(String(e));
  return new Error(
    `input "filename_prefix": cannot create "${prefix}" in the output folder (${code}): ` +
      'the output folder is not writable',
    { cause: e },
  );
}

function openState(
  ctx: RunContext,
  format: VideoFormat,
  fps: number,
  prefix: string,
  images: Tensor,
): WriterState {
  const [, height, width] = images.shape;
  const problems = validateVideoOptions({ format, fps, width, height });
  if (problems.length > 0) throw new Error(`input "images": ${problems.join('; ')}`);
  let state: WriterState;
  try {
    const target = resolveOutputPath(ctx.paths.output, prefix, format);
    state = { writer: openVideoWriter({ format, fps, path: target }), target: target.path, closed: false };
  } catch (e) {
    throw unwritable(e, prefix);
  }
  // Whatever ends the run before the last clip is written (error, interrupt) deletes the temp files.
  ctx.onRunEnd(async () => {
    if (state.closed) return;
    state.closed = true;
    await state.writer.abort();
  });
  return state;
}

export const videoWriteNode = defineNode({
  name: 'VideoWrite',
  displayName: 'Video Write',
  category: 'rdflow/output',
  description:
    'Writes frames to MP4 (H.264), GIF, animated WebP or PNG frames under the output folder; in a loop, clip by clip into one file.',
  inputs: {
    required: {
      images: input.link<Tensor>('IMAGE'),
      fps: input.int({ default: 4, min: 1, max: 60 }),
      format: input.combo(VIDEO_FORMATS, { default: 'mp4' }),
      filename_prefix: input.string({
        default: 'rdflow',
        tooltip: 'May contain a subfolder: "videos/rdflow".',
      }),
    },
  },
  outputs: [],
  outputNode: true,
  // A resumed run feeds the writer the clips made before, kept as the RGB bytes it encodes.
  checkpointCodec: { images: rgb8Codec },
  async validate(inputs) {
    const issues = [...prefixIssues(inputs.filename_prefix), ...fileNameIssues(inputs.filename_prefix)];
    if (inputs.format !== undefined && inputs.fps !== undefined) {
      for (const message of validateVideoOptions({ format: inputs.format, fps: inputs.fps })) {
        issues.push({ input: message.startsWith('fps') ? 'fps' : 'format', message });
      }
    }
    // An ffmpeg build without libx264 / a WebP encoder: say so before the run, not after clip 1.
    const format = inputs.format;
    if (format !== undefined && isVideoFormat(format) && !(await supportedFormats()).includes(format)) {
      issues.push({ input: 'format', message: `this machine's ffmpeg cannot write ${format}` });
    }
    return issues;
  },
  async run({ images: linked, fps, format, filename_prefix }, ctx) {
    const images = requireTensor(linked, 'images', 4, 'frames [F,H,W,3]');
    if (!isVideoFormat(format)) throw new Error(`input "format": unknown format "${format}"`);
    let state = ctx.state[STATE_KEY] as WriterState | undefined;
    if (state === undefined) {
      state = openState(ctx, format, fps, filename_prefix, images);
      ctx.state[STATE_KEY] = state;
    }
    await state.writer.write(images);

    const loop = ctx.loop;
    if (loop !== undefined && loop.iteration < loop.iterations - 1) {
      // The canvas shows how far the video has come; the file itself appears on the last clip.
      ctx.emitUi({
        clips: [{ iteration: loop.iteration, iterations: loop.iterations, frames: state.writer.frames }],
      });
      return { outputs: [] };
    }
    // A subfolder swapped for a link while the clips were written must not receive the file.
    try {
      assertStillInside(ctx.paths.output, state.target);
    } catch (e) {
      state.closed = true;
      await state.writer.abort();
      throw e;
    }
    const files = await state.writer.finish();
    state.closed = true;
    // In a nested loop the next pass of this inner loop starts a new file.
    delete ctx.state[STATE_KEY];
    const ui: UiOutput = {
      images: files.map((f) => fileEntry(ctx.paths.output, f, format)),
      animated: [format !== 'png'],
    };
    return { outputs: [], ui };
  },
});
