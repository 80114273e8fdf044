// The project's CLIP tokenizer against the ids transformers' CLIPTokenizer produced for the
// text-encoder cases (upper case, punctuation, words missing from the small vocabulary, and a "!"
// that SD 2.x's pad token "!" turns into the pad id).
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadClipTokenizer } from '../../server/runtime/tokenizer.ts';
import { modelsDir, readCase, readExpected } from '../helpers/convert.ts';

const FOLDERS: Record<string, string> = {
  'modelscope-tiny': 'modelscope-tiny/tokenizer',
  'vidrd-tiny': 'vidrd-tiny/stable-diffusion-2-1-base/tokenizer',
  'modelscope-tiny-onnx-fp16': 'modelscope-tiny-onnx-fp16/tokenizer',
};

const tmp = mkdtempSync(path.join(os.tmpdir(), 'rdflow-tokvec-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('CLIP tokenizer vs transformers on the text_encoder cases', () => {
  for (const [model, folder] of Object.entries(FOLDERS)) {
    it(`${model}: token_ids and input_ids of the text_encoder case, exactly`, async () => {
      const tok = await loadClipTokenizer(path.join(modelsDir, folder));
      // The ONNX export's cases reuse the PyTorch ones' prompts.
      const c = readCase(model === 'modelscope-tiny-onnx-fp16' ? 'modelscope-tiny' : model, 'text_encoder');
      expect(c.prompts).toHaveLength(3);
      const got = c.prompts!.map((p) => tok.encode(p));
      expect(got).toEqual(c.token_ids);
      // The .npy the encoder case feeds holds the same ids.
      const input = readExpected(model, 'text_input_ids.npy');
      expect(input.shape).toEqual([3, 77]);
      expect(Array.from(input.data as ArrayLike<number | bigint>, Number)).toEqual(got.flat());
    });
  }

  it('a "!" in the prompt is the pad id when "!" is the pad token, a BPE token otherwise', async () => {
    const src = path.join(modelsDir, FOLDERS['modelscope-tiny']);
    const sd2 = await loadClipTokenizer(src);
    const vocab = JSON.parse(readFileSync(path.join(src, 'vocab.json'), 'utf8')) as Record<string, number>;
    expect(sd2.padId).toBe(0);
    expect(sd2.encode('4k!').slice(0, 5)).toEqual([832, vocab['4</w>'], vocab['k</w>'], 0, 833]);
    // SD 1.x layout: pad with <|endoftext|>, "!" is not special and BPE gives "!</w>".
    const dir = path.join(tmp, 'sd1');
    cpSync(src, dir, { recursive: true });
    const config = JSON.parse(readFileSync(path.join(dir, 'tokenizer_config.json'), 'utf8')) as {
      pad_token: string;
      added_tokens_decoder: Record<string, unknown>;
    };
    config.pad_token = '<|endoftext|>';
    delete config.added_tokens_decoder['0'];
    writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify(config));
    const sd1 = await loadClipTokenizer(dir);
    expect(sd1.encode('4k!').slice(0, 6)).toEqual([
      832,
      vocab['4</w>'],
      vocab['k</w>'],
      vocab['!</w>'],
      833,
      833,
    ]);
  });
});
