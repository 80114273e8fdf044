// Locating the bundled ffmpeg/ffprobe: the npm packages' binaries, made executable when npm skipped
// their postinstall, and a clear error when missing.
import { chmodSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ffmpegEncoders } from '../../server/runtime/video/ffmpeg.ts';
import {
  FfmpegMissingError,
  ffmpegPath,
  ffprobePath,
  supportedFormats,
} from '../../server/runtime/video/index.ts';
import { tempDir } from './helpers.ts';

afterEach(() => {
  delete process.env.RDFLOW_FFMPEG;
});

describe('ffmpegPath / ffprobePath', () => {
  it('come from the installer packages and are executable', () => {
    for (const p of [ffmpegPath(), ffprobePath()]) {
      expect(p).toMatch(/node_modules[\\/]@ff(mpeg|probe)-installer[\\/]/);
      expect(statSync(p).mode & 0o100).toBe(0o100);
    }
  });

  it('the bundled ffmpeg has what the writers use: libx264, a WebP encoder and GIF', async () => {
    const enc = await ffmpegEncoders(ffmpegPath());
    expect(enc.has('libx264')).toBe(true);
    expect(enc.has('libwebp_anim') || enc.has('libwebp')).toBe(true);
    expect(enc.has('gif')).toBe(true);
    expect(await supportedFormats()).toEqual(['mp4', 'gif', 'webp', 'png']);
  });

  it('makes a binary executable when the package postinstall did not run', () => {
    const bin = path.join(tempDir(), 'ffmpeg');
    writeFileSync(bin, '#!/bin/sh\nexit 0\n');
    chmodSync(bin, 0o644);
    process.env.RDFLOW_FFMPEG = bin;
    expect(ffmpegPath()).toBe(bin);
    expect(statSync(bin).mode & 0o111).toBe(0o111);
  });

  it('says where it looked when the binary is missing', () => {
    const bin = path.join(tempDir(), 'nope', 'ffmpeg');
    process.env.RDFLOW_FFMPEG = bin;
    expect(() => ffmpegPath()).toThrow(FfmpegMissingError);
    expect(() => ffmpegPath()).toThrow(`ffmpeg not found at ${bin}`);
  });
});
