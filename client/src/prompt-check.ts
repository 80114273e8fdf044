// Checks of a prompt's text before it is queued, shared by the editor and `rdflow run`: a
// TextEncode whose text is a sampler's positive conditioning must not be empty (an error), and
// with the demo model the words of it the demo does not know are named (a warning). The demo knows
// a few colours, shapes and motions (server/runtime/demo/vocab.ts); any other word does nothing.
// Negative prompts are not checked: empty or unknown is what they usually are. Pure.
import { WORDS } from '../../server/runtime/demo/vocab.ts';
import type { ApiPrompt } from './types.ts';

export interface PromptProblem {
  nodeId: string;
  classType: string;
  /** The input it is about, if one. */
  input?: string;
  message: string;
}

/** Words that name nothing in any prompt, left out of the unknown-word warning. */
const FILLER_WORDS = new Set(['a', 'an', 'the', 'and', 'of', 'to', 'in', 'on', 'with', 'is', 'are']);

/** The prompt words the demo model does not know (lower-cased letter runs, as its tokenizer splits them). */
export function unknownDemoWords(text: string): string[] {
  const words = text.toLowerCase().match(/\p{L}+/gu) ?? [];
  return [...new Set(words.filter((w) => !Object.hasOwn(WORDS, w) && !FILLER_WORDS.has(w)))];
}

/** `isDemoModel` says whether a LoadVideoModel `model` value names the demo model. */
export function checkPromptTexts(
  prompt: ApiPrompt,
  isDemoModel: (model: string) => boolean,
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
  const demoEncoder = (id: string | undefined): boolean => {
    const loader = id === undefined ? undefined : prompt[id];
    const model = loader?.inputs.model;
    return loader?.class_type === 'LoadVideoModel' && typeof model === 'string' && isDemoModel(model);
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
    if (!demoEncoder(source(node.inputs.text_encoder))) continue;
    const unknown = unknownDemoWords(text);
    if (unknown.length > 0)
      warnings.push({
        nodeId: id,
        classType: node.class_type,
        message:
          `the demo model does not know ${unknown.map((w) => `'${w}'`).join(', ')} (such words do nothing); ` +
          `it knows ${Object.keys(WORDS).join(', ')}`,
      });
  }
  return { errors, warnings };
}
