// The demo training set and tokenizer files, checked without ONNX: the walk rules that make a
// VidRD continuation possible, and a tokenizer in which every vocabulary word is one token.
import { describe, expect, it } from 'vitest';
import {
  CLIP_ELEMENTS,
  CLIP_FRAMES,
  GRID_POSITIONS,
  buildTrainingSet,
  clipLatent,
  enumerateWalks,
} from '../../server/runtime/demo/dataset.ts';
import { clipsForPrompt } from '../../server/runtime/demo/metadata.ts';
import { bpeWord, buildTokenizerFiles } from '../../server/runtime/demo/tokenizer-files.ts';
import { WORDS } from '../../server/runtime/demo/vocab.ts';

const key = (walk: readonly number[]): string => walk.join(',');

describe('demo training walks', () => {
  const walks = enumerateWalks();
  const all = new Set(walks.map(key));

  it('are N-frame walks of one grid step per frame inside the grid, each listed once', () => {
    expect(all.size).toBe(walks.length);
    for (const w of walks) {
      expect(w).toHaveLength(CLIP_FRAMES);
      for (let f = 1; f < w.length; f++) expect(Math.abs(w[f] - w[f - 1])).toBe(1);
      expect(Math.min(...w)).toBeGreaterThanOrEqual(0);
      expect(Math.max(...w)).toBeLessThan(GRID_POSITIONS);
    }
  });

  it('cover every start position and are closed under time reversal', () => {
    expect(new Set(walks.map((w) => w[0])).size).toBe(GRID_POSITIONS);
    for (const w of walks) expect(all.has(key([...w].reverse()))).toBe(true);
  });

  it('give every clip a continuation that starts with its last M=4 frames reversed, mostly more than one', () => {
    const M = 4;
    let branching = 0;
    for (const w of walks) {
      const start = key(w.slice(CLIP_FRAMES - M).reverse());
      const next = walks.filter((v) => key(v.slice(0, M)) === start);
      expect(next.length).toBeGreaterThan(0);
      if (next.length > 1) branching++;
    }
    expect(branching / walks.length).toBeGreaterThan(0.5);
  });
});

describe('demo training set', () => {
  const set = buildTrainingSet();

  it('has every colour × shape × motion × walk once, labelled with its net direction', () => {
    const combos = new Set(set.clips.map((c) => `${c.colour}/${c.shape}/${c.motion}/${key(c.walk)}`));
    expect(combos.size).toBe(set.clips.length);
    for (const c of set.clips) {
      const net = c.walk[CLIP_FRAMES - 1] - c.walk[0];
      if (net === 0) expect(c.direction).toBeUndefined();
      else if (c.motion === 'sideways') expect(c.direction).toBe(net > 0 ? 'rightward' : 'leftward');
      else expect(c.direction).toBe(net > 0 ? 'downward' : 'upward');
    }
  });

  it('scales latents to unit standard deviation (the scaling factor SD uses)', () => {
    let sum = 0;
    let sq = 0;
    for (const c of set.clips) {
      for (const v of clipLatent(set, c.index)) {
        sum += v;
        sq += v * v;
      }
    }
    const n = set.clips.length * CLIP_ELEMENTS;
    expect(Math.sqrt(sq / n - (sum / n) ** 2)).toBeCloseTo(1, 2);
  });

  it('builds clips from frame latents shared by clips that show the same object at the same place', () => {
    const hw = CLIP_ELEMENTS / 4 / CLIP_FRAMES;
    const frame = (k: number, f: number): number[] => {
      const x0 = clipLatent(set, k);
      return [0, 1, 2, 3].flatMap((l) => [
        ...x0.subarray((l * CLIP_FRAMES + f) * hw, (l * CLIP_FRAMES + f + 1) * hw),
      ]);
    };
    const a = set.clips.find((c) => c.colour === 'red' && c.shape === 'ball' && c.motion === 'sideways');
    const b = set.clips.find(
      (c) =>
        c !== a &&
        c.colour === 'red' &&
        c.shape === 'ball' &&
        c.motion === 'sideways' &&
        c.walk[3] === a?.walk[0],
    );
    expect(a && b).toBeTruthy();
    if (!a || !b) return;
    expect(frame(b.index, 3)).toEqual(frame(a.index, 0));
    expect(frame(b.index, 3)).not.toEqual(frame(a.index, 1));
    // ‖x0_k‖² (the UNet's precomputed norms) matches the assembled clip.
    const x0 = clipLatent(set, b.index);
    expect(set.sqNorms[b.index]).toBeCloseTo(
      x0.reduce((s, v) => s + v * v, 0),
      0,
    );
  });
});

describe('prompt → training clips', () => {
  const set = buildTrainingSet();

  it('selects the clips showing everything the prompt names', () => {
    const redBallsRight = clipsForPrompt(set, 'A red ball moving right.');
    expect(redBallsRight.length).toBeGreaterThan(0);
    for (const k of redBallsRight) {
      const c = set.clips[k];
      expect([c.colour, c.shape, c.motion, c.direction]).toEqual(['red', 'ball', 'sideways', 'rightward']);
    }
    const all = set.clips.filter((c) => c.colour === 'blue' && c.shape === 'square').map((c) => c.index);
    expect(clipsForPrompt(set, 'a blue square')).toEqual(all);
    expect(clipsForPrompt(set, 'watermark')).toHaveLength(set.clips.length);
  });
});

describe('demo tokenizer files', () => {
  const files = buildTokenizerFiles();

  it('make each vocabulary word a single token by CLIP BPE, with unique ids', () => {
    const ranks = new Map(files.merges.map((m, i) => [m, i]));
    for (const word of Object.keys(WORDS)) {
      expect(bpeWord(word, ranks)).toEqual([`${word}</w>`]);
      expect(files.vocab[`${word}</w>`]).toBe(files.wordIds[word]);
    }
    const ids = Object.values(files.vocab);
    expect(new Set(ids).size).toBe(ids.length);
    expect(Math.max(...ids)).toBe(ids.length - 1);
  });

  it('keep the 512 byte-level symbols first and the special tokens last, as CLIP orders them', () => {
    const n = Object.keys(files.vocab).length;
    expect(files.vocab['!']).toBe(0);
    expect(files.vocab['a</w>']).toBe(256 + files.vocab.a);
    expect(files.vocab['<|startoftext|>']).toBe(n - 2);
    expect(files.vocab['<|endoftext|>']).toBe(n - 1);
  });
});
