// CLIP BPE: ids for sample prompts, derived by hand from the small vocab and merges written here.
import { mkdtempSync, rmSync, mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { clipTokenizerJson, loadClipTokenizer, parseMerges } from '../../server/runtime/tokenizer.ts';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'rdflow-tokenizer-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

// Byte-level symbols of ASCII letters and punctuation are the characters themselves.
const VOCAB: Record<string, number> = {
  a: 0,
  c: 1,
  t: 2,
  o: 3,
  g: 4,
  d: 5,
  '!': 6,
  'a</w>': 7,
  't</w>': 8,
  'g</w>': 9,
  'o</w>': 10,
  ca: 11,
  'cat</w>': 12,
  do: 13,
  'dog</w>': 14,
  '!</w>': 15,
  '<|startoftext|>': 16,
  '<|endoftext|>': 17,
  ',</w>': 18,
};
// Ranked merges: lower line = applied first.
const MERGES = ['c a', 'ca t</w>', 'd o', 'do g</w>'];
const BOS = 16;
const EOS = 17;
const BANG = 6;

function writeTokenizer(name: string, config: Record<string, unknown>, asJson = false): string {
  const dir = path.join(tmp, name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify(config));
  if (asJson) {
    writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(clipTokenizerJson(VOCAB, MERGES)));
  } else {
    writeFileSync(path.join(dir, 'vocab.json'), JSON.stringify(VOCAB));
    writeFileSync(path.join(dir, 'merges.txt'), `#version: 0.2\n${MERGES.join('\n')}\n`);
  }
  return dir;
}

const sd1 = {
  model_max_length: 8,
  pad_token: '<|endoftext|>',
  bos_token: '<|startoftext|>',
  eos_token: '<|endoftext|>',
};
const sd2 = { ...sd1, pad_token: '!' };

describe('CLIP tokenizer', () => {
  it('reads merges.txt without its #version header', () => {
    expect(parseMerges('#version: 0.2\nc a\n\nca t</w>\n')).toEqual(['c a', 'ca t</w>']);
  });

  it('wraps words in <|startoftext|> … <|endoftext|> and pads with <|endoftext|> (SD 1.x)', async () => {
    const tok = await loadClipTokenizer(writeTokenizer('sd1', sd1));
    expect(tok.maxLength).toBe(8);
    // "a" is one symbol, word-final: a</w>; "cat": c a → ca, then ca t</w> → cat</w>.
    expect(tok.encode('a cat')).toEqual([BOS, 7, 12, EOS, EOS, EOS, EOS, EOS]);
  });

  it('pads with the configured pad token "!" (SD 2.x)', async () => {
    const tok = await loadClipTokenizer(writeTokenizer('sd2', sd2));
    expect(tok.encode('a cat')).toEqual([BOS, 7, 12, EOS, BANG, BANG, BANG, BANG]);
  });

  it('lowercases, collapses whitespace and splits punctuation off words', async () => {
    const tok = await loadClipTokenizer(writeTokenizer('norm', sd1));
    // "A   Dog,cat" → "a dog,cat" → words a | dog | , | cat
    expect(tok.encode('  A \t Dog,cat ')).toEqual([BOS, 7, 14, 18, 12, EOS, EOS, EOS]);
  });

  it('applies merges by rank, not left to right', async () => {
    const tok = await loadClipTokenizer(writeTokenizer('rank', sd1));
    // "dogdog": d o g d o g</w> → (d o) twice → do g do g</w> → (do g</w>) → do g dog</w>
    expect(tok.encode('dogdog')).toEqual([BOS, 13, 4, 14, EOS, EOS, EOS, EOS]);
    // "cot": no merge joins c·o or o·t</w>: one token per symbol.
    expect(tok.encode('cot')).toEqual([BOS, 1, 3, 8, EOS, EOS, EOS, EOS]);
  });

  it('truncates a long prompt and keeps <|endoftext|> last', async () => {
    const tok = await loadClipTokenizer(writeTokenizer('trunc', sd2));
    // 7 words, room for 6 between BOS and EOS.
    expect(tok.encode('a cat dog a cat dog a')).toEqual([BOS, 7, 12, 14, 7, 12, 14, EOS]);
  });

  it('gives the same ids from tokenizer.json as from vocab.json + merges.txt', async () => {
    const fromFiles = await loadClipTokenizer(writeTokenizer('files', sd1));
    const fromJson = await loadClipTokenizer(writeTokenizer('json', sd1, true));
    for (const p of ['a cat', 'Dog, dog!', 'cot dogdog', ''])
      expect(fromJson.encode(p)).toEqual(fromFiles.encode(p));
    expect(fromJson.encode('')).toEqual([BOS, EOS, EOS, EOS, EOS, EOS, EOS, EOS]);
  });

  it('uses CLIP’s 77 tokens when the config gives no usable model_max_length', async () => {
    const tok = await loadClipTokenizer(writeTokenizer('huge', { ...sd1, model_max_length: 1e30 }));
    expect(tok.encode('a')).toHaveLength(77);
  });

  it('names the file when the tokenizer is incomplete', async () => {
    const dir = writeTokenizer('broken', sd1);
    rmSync(path.join(dir, 'merges.txt'));
    await expect(loadClipTokenizer(dir)).rejects.toThrow('tokenizer/merges.txt: missing');
  });
});
