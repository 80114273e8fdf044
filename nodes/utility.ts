// Small utility nodes: integer arithmetic, e.g. a per-clip seed from the loop index.
import { defineNode, input, output } from '../server/engine/define.ts';

export const intMathNode = defineNode({
  name: 'IntMath',
  displayName: 'Int Math',
  category: 'rdflow/utility',
  description: 'a op b on integers (e.g. seed + loop index).',
  inputs: {
    required: {
      a: input.int({ default: 0 }),
      b: input.int({ default: 0 }),
      op: input.combo(['add', 'subtract', 'multiply'], { default: 'add' }),
    },
  },
  outputs: [output<number>('INT', 'INT')],
  // Validation computes it on constant inputs, so a value it feeds (frames, a size) is checked.
  pure: true,
  run({ a, b, op }) {
    const result = op === 'add' ? a + b : op === 'subtract' ? a - b : a * b;
    if (!Number.isSafeInteger(result)) throw new Error(`${a} ${op} ${b} is outside the safe integer range`);
    return { outputs: [result] };
  },
});
