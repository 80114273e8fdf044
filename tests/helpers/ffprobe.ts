// Reading back written videos with the ffprobe binary the video module ships with: the first video
// stream as decoded (-count_frames), and per-packet durations.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { ffprobePath } from '../../server/runtime/video/index.ts';

const run = promisify(execFile);

/** ffprobe's fields of a video stream, as it prints them (counts and rates are strings). */
export interface ProbedStream {
  codec_name: string;
  width: number;
  height: number;
  pix_fmt: string;
  r_frame_rate: string;
  avg_frame_rate: string;
  nb_read_frames: string;
  duration?: string;
}

/** ffprobe with -count_frames: the first video stream as decoded. */
export async function probe(file: string): Promise<ProbedStream> {
  const { stdout } = await run(ffprobePath(), [
    '-v',
    'error',
    '-count_frames',
    '-select_streams',
    'v:0',
    '-show_entries',
    'stream=codec_name,width,height,pix_fmt,r_frame_rate,avg_frame_rate,nb_read_frames,duration',
    '-of',
    'json',
    file,
  ]);
  const streams = (JSON.parse(stdout) as { streams: ProbedStream[] }).streams;
  if (streams.length !== 1) throw new Error(`ffprobe found ${streams.length} video streams in ${file}`);
  return streams[0];
}

/** Frame count, frame rate, codec and size of a video, as numbers. */
export async function probeVideo(
  file: string,
): Promise<{ frames: number; fps: number; codec: string; width: number; height: number }> {
  const s = await probe(file);
  const [num, den] = s.r_frame_rate.split('/').map(Number);
  return {
    frames: Number(s.nb_read_frames),
    fps: num / (den || 1),
    codec: s.codec_name,
    width: s.width,
    height: s.height,
  };
}

/** Per-frame durations in seconds, from ffprobe's packets. */
export async function probeFrameDurations(file: string): Promise<number[]> {
  const { stdout } = await run(ffprobePath(), [
    '-v',
    'error',
    '-select_streams',
    'v:0',
    '-show_entries',
    'packet=duration_time',
    '-of',
    'json',
    file,
  ]);
  return (JSON.parse(stdout) as { packets: Array<{ duration_time: string }> }).packets.map((p) =>
    Number(p.duration_time),
  );
}
