// The demo tokenizer in CLIP's on-disk BPE form (vocab.json + merges.txt), small enough to read:
// the 512 byte-level base symbols, merges that build each vocabulary word into one token, and the
// two special tokens. Real CLIP files have the same structure with 49408 entries.
import { WORDS } from './vocab.ts';

export const BOS_TOKEN = '<|startoftext|>';
export const EOS_TOKEN = '<|endoftext|>';
const END_OF_WORD = '</w>';
export const MODEL_MAX_LENGTH = 77;

/** GPT-2/CLIP byte → printable unicode character table (bytes_to_unicode), in CLIP's vocab order. */
function byteSymbols(): string[] {
  const printable: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) printable.push(b);
  for (let b = 0xa1; b <= 0xac; b++) printable.push(b);
  for (let b = 0xae; b <= 0xff; b++) printable.push(b);
  const codes = [...printable];
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    if (!printable.includes(b)) {
      printable.push(b);
      codes.push(256 + extra);
      extra++;
    }
  }
  return codes.map((c) => String.fromCodePoint(c));
}

/** Greedy BPE as CLIP applies it: repeatedly merge the adjacent pair with the lowest rank. */
export function bpeWord(word: string, ranks: ReadonlyMap<string, number>): string[] {
  const symbols = [...word];
  symbols[symbols.length - 1] += END_OF_WORD;
  for (;;) {
    let best = -1;
    let bestRank = Infinity;
    for (let i = 0; i + 1 < symbols.length; i++) {
      const rank = ranks.get(`${symbols[i]} ${symbols[i + 1]}`);
      if (rank !== undefined && rank < bestRank) {
        bestRank = rank;
        best = i;
      }
    }
    if (best < 0) return symbols;
    symbols.splice(best, 2, symbols[best] + symbols[best + 1]);
  }
}

export interface DemoTokenizerFiles {
  /** token → id, CLIP order: bytes, bytes + "</w>", merge results, specials. */
  vocab: Record<string, number>;
  /** "a b" merge rules in rank order. */
  merges: string[];
  /** Id of each vocabulary word's single token ("red" → id of "red</w>"). */
  wordIds: Record<string, number>;
}

/**
 * Builds merges so every word of WORDS becomes one token. A new merge is appended with the lowest
 * priority, so it only fires where no earlier merge applies: words already whole stay whole.
 */
export function buildTokenizerFiles(words: readonly string[] = Object.keys(WORDS)): DemoTokenizerFiles {
  const base = byteSymbols();
  const tokens = [...base, ...base.map((s) => s + END_OF_WORD)];
  const merges: string[] = [];
  const ranks = new Map<string, number>();
  for (const word of [...words].sort()) {
    for (;;) {
      const parts = bpeWord(word, ranks);
      if (parts.length === 1) break;
      const rule = `${parts[0]} ${parts[1]}`;
      ranks.set(rule, merges.length);
      merges.push(rule);
      // Two split orders can build the same string; a vocab lists each token once.
      if (!tokens.includes(parts[0] + parts[1])) tokens.push(parts[0] + parts[1]);
    }
  }
  tokens.push(BOS_TOKEN, EOS_TOKEN);
  const vocab: Record<string, number> = {};
  tokens.forEach((t, i) => {
    vocab[t] = i;
  });
  const wordIds: Record<string, number> = {};
  for (const word of words) wordIds[word] = vocab[word + END_OF_WORD];
  return { vocab, merges, wordIds };
}

/** tokenizer_config.json as transformers writes it for CLIPTokenizer (SD 1.x pads with EOS). */
export function tokenizerConfig(): Record<string, unknown> {
  return {
    tokenizer_class: 'CLIPTokenizer',
    model_max_length: MODEL_MAX_LENGTH,
    do_lower_case: true,
    bos_token: BOS_TOKEN,
    eos_token: EOS_TOKEN,
    unk_token: EOS_TOKEN,
    pad_token: EOS_TOKEN,
    add_prefix_space: false,
    errors: 'replace',
  };
}

export function mergesText(merges: readonly string[]): string {
  return ['#version: 0.2', ...merges].join('\n') + '\n';
}
