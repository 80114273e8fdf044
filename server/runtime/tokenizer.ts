// CLIP's byte-level BPE tokenizer via @huggingface/tokenizers, from a diffusers `tokenizer/` folder:
// tokenizer.json when present, else the same pipeline assembled from vocab.json + merges.txt.
// Ids come out as CLIP's text encoder expects them: <|startoftext|>, the prompt's tokens,
// <|endoftext|>, then the configured pad token up to model_max_length (SD 1.x pads with
// <|endoftext|>, SD 2.x with "!"); a long prompt is cut so <|endoftext|> stays last.
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';

const BOS = '<|startoftext|>';
const EOS = '<|endoftext|>';
/** CLIP's context length; used when the config names none, or an "unlimited" sentinel (1e30). */
const CLIP_CONTEXT = 77;

export interface ClipTokenizer {
  /** Length every encoding is padded/truncated to. */
  readonly maxLength: number;
  readonly bosId: number;
  readonly eosId: number;
  readonly padId: number;
  /** The prompt's ids, padded/truncated to `length` (default maxLength). */
  encode(text: string, length?: number): number[];
}

/**
 * CLIP's tokenizer.json pipeline: NFC, whitespace runs → one space, lowercase; split into CLIP's
 * word pattern (contractions, letter runs, single digits, punctuation runs) and drop the rest
 * (whitespace); map bytes to unicode; BPE with "</w>" marking a word's last symbol.
 */
export function clipTokenizerJson(
  vocab: Record<string, number>,
  merges: readonly string[],
): Record<string, unknown> {
  const added = [BOS, EOS]
    .filter((t) => vocab[t] !== undefined)
    .map((content) => ({
      id: vocab[content],
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: true,
      special: true,
    }));
  return {
    version: '1.0',
    added_tokens: added,
    normalizer: {
      type: 'Sequence',
      normalizers: [
        { type: 'NFC' },
        { type: 'Replace', pattern: { Regex: '\\s+' }, content: ' ' },
        { type: 'Lowercase' },
      ],
    },
    pre_tokenizer: {
      type: 'Sequence',
      pretokenizers: [
        {
          type: 'Split',
          pattern: {
            Regex:
              "<\\|startoftext\\|>|<\\|endoftext\\|>|'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|[^\\s\\p{L}\\p{N}]+",
          },
          behavior: 'Removed',
          invert: true,
        },
        { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
      ],
    },
    post_processor: null,
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: EOS,
      continuing_subword_prefix: '',
      end_of_word_suffix: '</w>',
      fuse_unk: false,
      byte_fallback: false,
      vocab,
      merges: [...merges],
    },
  };
}

/** merges.txt → "a b" rules in rank order (skips the "#version" header and blank lines). */
export function parseMerges(text: string): string[] {
  return text.split(/\r?\n/).filter((l) => l.trim() !== '' && !l.startsWith('#version'));
}

function tokenName(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (typeof v === 'object' && v !== null && typeof (v as { content?: unknown }).content === 'string') {
    return (v as { content: string }).content;
  }
  return undefined;
}

interface AddedToken {
  id: number;
  content: string;
  single_word: boolean;
  lstrip: boolean;
  rstrip: boolean;
  normalized: boolean;
  special: boolean;
}

/**
 * The tokenizer's added tokens plus the special tokens tokenizer_config.json names (its
 * added_tokens_decoder and bos/eos/unk/pad). transformers' CLIPTokenizer (slow and fast) cuts
 * these out of the prompt before BPE, so with SD 2.x's pad token "!" a "!" typed in a prompt
 * becomes the pad id, not the "!</w>" BPE token; the text encoders were used that way.
 */
function withConfigSpecials(json: Record<string, unknown>, config: Record<string, unknown>): AddedToken[] {
  const added = Array.isArray(json.added_tokens) ? [...(json.added_tokens as AddedToken[])] : [];
  const model = json.model as { vocab?: Record<string, number> } | undefined;
  const have = new Set(added.map((t) => t.content));
  const add = (content: string, id: number | undefined, entry: Record<string, unknown> = {}): void => {
    if (have.has(content) || id === undefined || !Number.isInteger(id)) return;
    have.add(content);
    const flag = (k: string, fallback: boolean): boolean =>
      typeof entry[k] === 'boolean' ? (entry[k] as boolean) : fallback;
    added.push({
      id,
      content,
      single_word: flag('single_word', false),
      lstrip: flag('lstrip', false),
      rstrip: flag('rstrip', false),
      // The slow tokenizer matches added tokens in the raw text.
      normalized: flag('normalized', false),
      special: flag('special', true),
    });
  };
  const decoder = config.added_tokens_decoder;
  if (typeof decoder === 'object' && decoder !== null) {
    for (const [id, entry] of Object.entries(decoder as Record<string, unknown>)) {
      const content = tokenName(entry);
      if (content !== undefined) add(content, Number(id), entry as Record<string, unknown>);
    }
  }
  for (const key of ['bos_token', 'eos_token', 'unk_token', 'pad_token']) {
    const content = tokenName(config[key]);
    if (content !== undefined) add(content, model?.vocab?.[content]);
  }
  return added;
}

async function readJson(file: string): Promise<unknown> {
  const rel = path.join(path.basename(path.dirname(file)), path.basename(file));
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    throw new Error(`${rel}: missing`);
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw new Error(`${rel}: not valid JSON (${(e as Error).message})`, { cause: e });
  }
}

/** Loads the tokenizer of a diffusers `tokenizer/` folder. */
export async function loadClipTokenizer(tokenizerDir: string): Promise<ClipTokenizer> {
  const config = ((await readJson(path.join(tokenizerDir, 'tokenizer_config.json'))) ?? {}) as Record<
    string,
    unknown
  >;
  let json: Record<string, unknown>;
  const jsonFile = path.join(tokenizerDir, 'tokenizer.json');
  if (existsSync(jsonFile)) {
    json = (await readJson(jsonFile)) as Record<string, unknown>;
  } else {
    const vocab = (await readJson(path.join(tokenizerDir, 'vocab.json'))) as Record<string, number>;
    let merges: string;
    try {
      merges = await readFile(path.join(tokenizerDir, 'merges.txt'), 'utf8');
    } catch {
      throw new Error('tokenizer/merges.txt: missing');
    }
    json = clipTokenizerJson(vocab, parseMerges(merges));
  }
  // Specials and padding are applied below, one way for both sources.
  const tok = new Tokenizer(
    { ...json, added_tokens: withConfigSpecials(json, config), post_processor: null },
    { ...config },
  );
  const idOf = (key: string, fallback: string): number => {
    const name = tokenName(config[key]) ?? fallback;
    const id = tok.token_to_id(name);
    if (id === undefined) throw new Error(`tokenizer: ${key} "${name}" is not in the vocabulary`);
    return id;
  };
  const bosId = idOf('bos_token', BOS);
  const eosId = idOf('eos_token', EOS);
  const padId = idOf('pad_token', EOS);
  const configured = config.model_max_length;
  const maxLength =
    typeof configured === 'number' && Number.isInteger(configured) && configured >= 2 && configured <= 4096
      ? configured
      : CLIP_CONTEXT;
  return {
    maxLength,
    bosId,
    eosId,
    padId,
    encode(text: string, length = maxLength): number[] {
      const body = tok.encode(text, { add_special_tokens: false }).ids.slice(0, length - 2);
      const ids = [bosId, ...body, eosId];
      while (ids.length < length) ids.push(padId);
      return ids;
    },
  };
}
