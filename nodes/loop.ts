// The loop construct: a LoopStart/LoopEnd pair whose body the engine runs once per iteration, so
// a 100-clip video is the same small graph as a 3-clip one. The scheduler gives these nodes their
// meaning (server/engine/loop.ts); their run functions only describe iteration 0 for clarity.
import { defineNode, input, output } from '../server/engine/define.ts';

export const loopStartNode = defineNode({
  name: 'LoopStart',
  displayName: 'Loop Start',
  category: 'rdflow/loop',
  description:
    'Runs every node that depends on it once per iteration, up to the matching Loop End. ' +
    'index is the 0-based iteration; value1..4 are the initial values in iteration 0, then what ' +
    'Loop End received in the previous iteration.',
  role: 'loop-start',
  inputs: {
    required: {
      iterations: input.int({ default: 6, min: 1, max: 100_000, tooltip: 'How many times the body runs' }),
    },
    optional: {
      initial_value1: input.link<unknown>('*'),
      initial_value2: input.link<unknown>('*'),
      initial_value3: input.link<unknown>('*'),
      initial_value4: input.link<unknown>('*'),
    },
  },
  cost({ iterations }) {
    if (iterations === undefined) return [];
    return [
      {
        resource: 'loopIterations',
        input: 'iterations',
        amount: iterations,
        what: `${iterations} loop iterations`,
      },
    ];
  },
  outputs: [
    output<{ loop: string }>('LOOP', 'flow'),
    output<number>('INT', 'index'),
    output<unknown>('*', 'value1'),
    output<unknown>('*', 'value2'),
    output<unknown>('*', 'value3'),
    output<unknown>('*', 'value4'),
  ],
  run(inputs, ctx) {
    return {
      outputs: [
        { loop: ctx.nodeId },
        0,
        inputs.initial_value1,
        inputs.initial_value2,
        inputs.initial_value3,
        inputs.initial_value4,
      ],
    };
  },
});

export const loopEndNode = defineNode({
  name: 'LoopEnd',
  displayName: 'Loop End',
  category: 'rdflow/loop',
  description:
    'Closes the loop started by the Loop Start linked to flow. value1..4 are carried to the next ' +
    'iteration; its outputs are the values received in the last iteration.',
  role: 'loop-end',
  inputs: {
    required: { flow: input.link<{ loop: string }>('LOOP') },
    optional: {
      value1: input.link<unknown>('*'),
      value2: input.link<unknown>('*'),
      value3: input.link<unknown>('*'),
      value4: input.link<unknown>('*'),
    },
  },
  outputs: [
    output<unknown>('*', 'value1'),
    output<unknown>('*', 'value2'),
    output<unknown>('*', 'value3'),
    output<unknown>('*', 'value4'),
  ],
  run(inputs) {
    return { outputs: [inputs.value1, inputs.value2, inputs.value3, inputs.value4] };
  },
});
