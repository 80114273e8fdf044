// Makes the README's frame strip from a video the demo wrote: `npm run docs:strip [VIDEO] [OUT.png]`.
// Defaults: the newest output/rdflow_*.mp4 and docs/demo-strip.png. Frames are decoded with the
// bundled ffmpeg and laid out by the same frameStrip the clip previews use.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { ffmpegPath, ffprobePath, frameStrip } from '../server/runtime/video/index.ts';

const STRIP_FRAMES = 16;
const SCALE = 0.375;

function newestVideo(dir: string): string {
  const videos = fs
    .readdirSync(dir)
    .filter((f) => /^rdflow_\d+\.mp4$/.test(f))
    .map((f) => path.join(dir, f))
    .sort((a, b) => fs.statSync(b).mtimeMs - fs.statSync(a).mtimeMs);
  if (videos.length === 0) throw new Error(`no rdflow_*.mp4 in ${dir}: run \`npm run demo\` first`);
  return videos[0];
}

const video = process.argv[2] ?? newestVideo('output');
const out = process.argv[3] ?? path.join('docs', 'demo-strip.png');

const [width, height] = execFileSync(ffprobePath(), [
  '-v',
  'error',
  '-select_streams',
  'v:0',
  '-show_entries',
  'stream=width,height',
  '-of',
  'csv=p=0',
  video,
])
  .toString()
  .trim()
  .split(',')
  .map(Number);
const raw = execFileSync(
  ffmpegPath(),
  ['-v', 'error', '-i', video, '-f', 'rawvideo', '-pix_fmt', 'rgb24', 'pipe:1'],
  { maxBuffer: 1 << 30 },
);
const frameBytes = width * height * 3;
const frames = Math.floor(raw.length / frameBytes);
const data = new Float32Array(frames * frameBytes);
for (let i = 0; i < data.length; i++) data[i] = raw[i] / 255;
const images = { data, shape: [frames, height, width, 3] };
const step = Math.max(1, Math.floor(frames / STRIP_FRAMES));
const chosen = Array.from({ length: Math.min(STRIP_FRAMES, frames) }, (_, i) => i * step);
fs.writeFileSync(out, frameStrip(images, chosen, SCALE));
console.log(`${out}: frames ${chosen.join(', ')} of ${frames} from ${video}`);
