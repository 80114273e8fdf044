// `rdflow convert` and `rdflow models` as a user runs them: plain progress lines and a summary,
// VidRD releases recognised by themselves or given as three parts, exit codes, the models listing.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { runCli } from '../../server/cli.ts';
import { modelsDir as vectorModels } from '../helpers/convert.ts';
import { captureOutput } from '../helpers/cli-output.ts';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rdflow-convert-cli-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

async function cli(argv: string[], tty = false) {
  const stdout = captureOutput({ isTTY: tty });
  const stderr = captureOutput();
  const code = await runCli(argv, { stdout, stderr, cwd: dir, signal: new AbortController().signal });
  return { code, out: stdout.text(), err: stderr.text() };
}

const VIDRD = path.join(vectorModels, 'vidrd-tiny');

describe('rdflow convert', () => {
  test('a diffusers folder: progress per component, then the summary', async () => {
    const r = await cli(['convert', path.join(vectorModels, 'modelscope-tiny'), 'models/ms']);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(
      /converting a modelscope model: text_encoder 46\.3 k parameters, unet 704\.5 k parameters/,
    );
    expect(r.out).toMatch(/^unet: .* \/ .* \(100 %\)/m);
    expect(r.out).toMatch(/converted modelscope model into .*models\/ms \(float32\)/);
    expect(r.out).toMatch(/^ {2}vae_decoder/m);
    expect(fs.existsSync(path.join(dir, 'models', 'ms', 'unet', 'model.onnx'))).toBe(true);
  });

  test('on a terminal the bar is redrawn in place', async () => {
    const r = await cli(['convert', path.join(vectorModels, 'modelscope-tiny'), 'tty-out'], true);
    expect(r.code).toBe(0);
    expect(r.out).toContain('\r\x1b[2K');
    expect(r.out).toMatch(/\[#+\]/);
  });

  test('a VidRD release is recognised and its summary says how the VAE decodes', async () => {
    const r = await cli(['convert', VIDRD, 'models/vidrd', '--dtype', 'float16']);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/converted vidrd model into .*\(float16\)/);
    expect(r.out).toMatch(/vae_finetuned decoded one frame at a time/);
    expect(r.out).toMatch(/keys not used/);
  });

  test('the three parts of a VidRD release given apart', async () => {
    const r = await cli([
      'convert',
      '--sd',
      path.join(VIDRD, 'stable-diffusion-2-1-base'),
      '--checkpoint',
      path.join(VIDRD, 'ModelT2V.pth'),
      '--vae',
      path.join(VIDRD, 'vae_finetuned'),
      'parts-out',
    ]);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/converted vidrd model/);
  });

  test('usage mistakes exit 2; a bad source exits 1 naming the problem', async () => {
    expect((await cli(['convert', 'only-one'])).code).toBe(2);
    expect((await cli(['convert', VIDRD, 'x', '--dtype', 'int8'])).code).toBe(2);
    expect((await cli(['convert', '--sd', VIDRD, 'x'])).code).toBe(2);
    const bad = await cli(['convert', path.join(dir, 'nothing-here'), 'y']);
    expect(bad.code).toBe(1);
    expect(bad.err).toMatch(/nothing-here: no such folder/);
  });
});

describe('rdflow models', () => {
  test('lists converted folders with family, dtype, size and source, and checkpoints still to convert', async () => {
    fs.cpSync(path.join(vectorModels, 'modelscope-tiny'), path.join(dir, 'models', 'raw-ms'), {
      recursive: true,
    });
    const r = await cli(['models']);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^NAME\s+FAMILY\s+DTYPE\s+SIZE\s+LIMITS\s+SOURCE/m);
    expect(r.out).toMatch(
      /^ms\s+modelscope\s+float32\s+[\d.]+ MiB\s+1\+ frames, sizes ×8 px\s+.*modelscope-tiny/m,
    );
    expect(r.out).toMatch(/^vidrd\s+vidrd\s+float16/m);
    expect(r.out).toMatch(/^raw-ms\s+modelscope\s+source/m);
    const json = JSON.parse((await cli(['models', '--json'])).out) as { name: string; kind: string }[];
    expect(json.map((m) => [m.name, m.kind])).toEqual([
      ['ms', 'onnx'],
      ['raw-ms', 'checkpoint'],
      ['vidrd', 'onnx'],
    ]);
  });
});
