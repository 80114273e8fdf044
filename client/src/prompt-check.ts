// Checks of a prompt's text before it is queued, shared by the editor and `rdflow run`: a
// TextEncode whose text is a sampler's positive conditioning must not be empty (an error), and
// with a model that knows only a few words (the demo: some colours, shapes and motions; its
// vocabulary comes in /object_info's option_details, or from the model folder in the CLI) the words
// of it the model does not know are named (a warning): any other word does nothing.
// Negative prompts are not checked: empty or unknown is what they usually are. Pure.
import type { ApiPrompt, ObjectInfo } from './types.ts';

export interface PromptProblem {
  nodeId: string;
  classType: string;
  /** The input it is about, if one. */
  input?: string;
  message: string;
}

/** Words that name nothing in any prompt, left out of the unknown-word warning. */
const FILLER_WORDS = new Set(['a', 'an', 'the', 'and', 'of', 'to', 'in', 'on', 'with', 'is', 'are']);

/** A model's known words, when it knows only a few; undefined for a model that knows any text. */
export type VocabularyOf = (model: string) => ReadonlySet<string> | undefined;

/** The prompt words a model does not know (lower-cased letter runs, as the demo's tokenizer splits them). */
export function unknownWords(text: string, vocabulary: ReadonlySet<string>): string[] {
  const words = text.toLowerCase().match(/\p{L}+/gu) ?? [];
  return [...new Set(words.filter((w) => !vocabulary.has(w) && !FILLER_WORDS.has(w)))];
}

/** The vocabularies /object_info lists for LoadVideoModel's models (option_details[model].vocabulary). */
export function vocabulariesFrom(objectInfo: ObjectInfo): VocabularyOf {
  const details = objectInfo.LoadVideoModel?.input.required?.model?.[1]?.option_details;
  const byModel = new Map<string, ReadonlySet<string>>();
  if (typeof details === 'object' && details !== null) {
    for (const [model, info] of Object.entries(details)) {
      const words = (info as { vocabulary?: unknown } | null)?.vocabulary;
      if (Array.isArray(words)) byModel.set(model, new Set(words.filter((w) => typeof w === 'string')));
    }
  }
  return (model) => byModel.get(model);
}

/** `vocabularyOf` gives the words a LoadVideoModel `model` value knows, if it knows only a few. */
export function checkPromptTexts(
  prompt: ApiPrompt,
  vocabularyOf: VocabularyOf,
): { errors: PromptProblem[]; warnings: PromptProblem[] } {
  const errors: PromptProblem[] = [];
  const warnings: PromptProblem[] = [];
  const source = (v: unknown): string | undefined =>
    Array.isArray(v) && typeof v[0] === 'string' && Object.hasOwn(prompt, v[0]) ? v[0] : undefined;
  const positives = new Set<string>();
  for (const node of Object.values(prompt)) {
    const id = source(node.inputs.positive);
    if (id !== undefined) positives.add(id);
  }
  const vocabularyOfEncoder = (id: string | undefined): ReadonlySet<string> | undefined => {
    const loader = id === undefined ? undefined : prompt[id];
    const model = loader?.inputs.model;
    return loader?.class_type === 'LoadVideoModel' && typeof model === 'string'
      ? vocabularyOf(model)
      : undefined;
  };
  for (const id of positives) {
    const node = prompt[id];
    const text = node.inputs.text;
    if (node.class_type !== 'TextEncode' || typeof text !== 'string') continue;
    if (text.trim() === '') {
      errors.push({
        nodeId: id,
        classType: node.class_type,
        input: 'text',
        message: 'the prompt is empty; the sampler needs one',
      });
      continue;
    }
    const vocabulary = vocabularyOfEncoder(source(node.inputs.text_encoder));
    if (vocabulary === undefined) continue;
    const unknown = unknownWords(text, vocabulary);
    if (unknown.length > 0)
      warnings.push({
        nodeId: id,
        classType: node.class_type,
        message:
          `the demo model does not know ${unknown.map((w) => `'${w}'`).join(', ')} (such words do nothing); ` +
          `it knows ${[...vocabulary].join(', ')}`,
      });
  }
  return { errors, warnings };
}
