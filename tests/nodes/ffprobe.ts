// Frame count and rate of a video file, read with the ffprobe binary the video module ships with.
import { execFileSync } from 'node:child_process';
import { ffprobePath } from '../../nodes/lib/video/index.ts';

export function probeVideo(file: string): {
  frames: number;
  fps: number;
  codec: string;
  width: number;
  height: number;
} {
  const out = execFileSync(
    ffprobePath(),
    [
      '-v',
      'error',
      '-count_frames',
      '-select_streams',
      'v:0',
      '-show_entries',
      'stream=nb_read_frames,r_frame_rate,codec_name,width,height',
      '-of',
      'json',
      file,
    ],
    { encoding: 'utf8' },
  );
  const s = (JSON.parse(out) as { streams: Record<string, string | number>[] }).streams[0];
  const [num, den] = String(s.r_frame_rate).split('/').map(Number);
  return {
    frames: Number(s.nb_read_frames),
    fps: num / (den || 1),
    codec: String(s.codec_name),
    width: Number(s.width),
    height: Number(s.height),
  };
}
