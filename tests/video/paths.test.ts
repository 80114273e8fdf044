// resolveOutputPath: ComfyUI-style filename_prefix → a file inside the output folder with the next
// free 5-digit counter; anything that could leave the output folder is refused.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { OutputPathError, resolveOutputPath } from '../../server/runtime/video/index.ts';
import { tempDir } from './helpers.ts';

describe('resolveOutputPath', () => {
  it('starts at _00001 and creates the subfolder named in the prefix', () => {
    const out = tempDir();
    const t = resolveOutputPath(out, 'videos/clip', 'mp4');
    expect(t).toEqual({
      path: path.join(out, 'videos', 'clip_00001.mp4'),
      filename: 'clip_00001.mp4',
      subfolder: 'videos',
    });
    expect(resolveOutputPath(out, 'clip', '.gif')).toMatchObject({
      filename: 'clip_00001.gif',
      subfolder: '',
    });
  });

  it('picks one more than the highest counter of that prefix and extension, counting temp files', () => {
    const out = tempDir();
    for (const n of [
      'clip_00001.mp4',
      'clip_00007.mp4',
      'clip_00009.gif',
      'clipper_00020.mp4',
      'clip_3.mp4',
    ]) {
      writeFileSync(path.join(out, n), '');
    }
    expect(resolveOutputPath(out, 'clip', 'mp4').filename).toBe('clip_00008.mp4');
    // A run still writing under its temporary name has claimed its counter.
    writeFileSync(path.join(out, `.clip_00008.tmp-${process.pid}-abcd.mp4`), '');
    expect(resolveOutputPath(out, 'clip', 'mp4').filename).toBe('clip_00009.mp4');
    expect(resolveOutputPath(out, 'clip', 'gif').filename).toBe('clip_00010.gif');
    // Prefix characters are literal, not a pattern.
    writeFileSync(path.join(out, 'a.b_00003.mp4'), '');
    expect(resolveOutputPath(out, 'a.b', 'mp4').filename).toBe('a.b_00004.mp4');
    expect(resolveOutputPath(out, 'a+b', 'mp4').filename).toBe('a+b_00001.mp4');
  });

  it('deletes temp files left by a process that no longer exists, and keeps live ones', () => {
    const out = tempDir();
    const deadPid = spawnSync(process.execPath, ['-e', '0']).pid as number;
    const stale = `.clip_00004.tmp-${deadPid}-0bad.mp4`;
    const live = `.clip_00002.tmp-${process.pid}-600d.mp4`;
    writeFileSync(path.join(out, stale), 'partial');
    writeFileSync(path.join(out, live), 'in progress');
    expect(resolveOutputPath(out, 'clip', 'mp4').filename).toBe('clip_00003.mp4');
    expect(readdirSync(out)).toEqual([live]);
  });

  it.each([
    ['../escape', /\.\./],
    ['videos/../../escape', /\.\./],
    ['..\\escape', /\.\./],
    ['/etc/passwd', /absolute/],
    ['C:\\Windows\\x', /absolute/],
    ['a\0b', /NUL/],
    ['', /empty/],
    ['videos/', /empty/],
    ['./clip', /"\."/],
  ])('refuses %j', (prefix, reason) => {
    const out = tempDir();
    expect(() => resolveOutputPath(out, prefix, 'mp4')).toThrow(OutputPathError);
    expect(() => resolveOutputPath(out, prefix, 'mp4')).toThrow(reason);
  });

  it('refuses a subfolder that is a symlink leading out of the output folder', () => {
    const out = tempDir();
    const elsewhere = tempDir();
    symlinkSync(elsewhere, path.join(out, 'link'));
    expect(() => resolveOutputPath(out, 'link/clip', 'mp4')).toThrow(/outside the output folder/);
    mkdirSync(path.join(out, 'real'));
    expect(resolveOutputPath(out, 'real/clip', 'mp4').subfolder).toBe('real');
  });

  it('refuses extensions that are not plain', () => {
    expect(() => resolveOutputPath(tempDir(), 'clip', 'mp4/../x')).toThrow(/extension/);
  });
});
