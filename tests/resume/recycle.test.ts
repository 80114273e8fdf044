// RunContext.recycled: a loop-body node gets back the outputs of its previous iteration once the
// engine has let go of them, so it can reuse their buffers — but never a value still carried.
import { afterAll, expect, test } from 'vitest';
import { loopEndNode, loopStartNode } from '../../nodes/loop.ts';
import { defineNode, input, output, type AnyNodeDef } from '../../server/engine/define.ts';
import { createEngine } from '../../server/engine/index.ts';
import type { ApiPrompt } from '../../server/engine/types.ts';
import { makePaths } from '../nodes/context.ts';

const paths = makePaths('rdflow-recycle-');
afterAll(() => paths.cleanup());

function nodes(log: {
  got: (Float32Array | undefined)[];
  made: Float32Array[];
  seen: number[];
}): AnyNodeDef[] {
  const make = defineNode({
    name: 'TestMake',
    displayName: 'Make',
    category: 'test',
    description: 'A buffer per iteration, reusing the recycled one.',
    inputs: { required: { index: input.int({ default: 0, min: 0, max: 100 }) } },
    outputs: [output<{ data: Float32Array }>('BUF')],
    run({ index }, ctx) {
      const prev = ctx.recycled?.()?.[0] as { data: Float32Array } | undefined;
      log.got.push(prev?.data);
      const data = prev?.data ?? new Float32Array(4);
      data.fill(index);
      log.made.push(data);
      return { outputs: [{ data }] };
    },
  });
  const use = defineNode({
    name: 'TestUse',
    displayName: 'Use',
    category: 'test',
    description: 'Reads the buffer.',
    inputs: { required: { buf: input.link<{ data: Float32Array }>('BUF') } },
    outputs: [],
    outputNode: true,
    run({ buf }) {
      log.seen.push(buf.data[0]);
      return { outputs: [] };
    },
  });
  return [loopStartNode, loopEndNode, make, use];
}

function prompt(carry: boolean): ApiPrompt {
  return {
    '1': { class_type: 'LoopStart', inputs: { iterations: 4 } },
    '2': { class_type: 'TestMake', inputs: { index: ['1', 1] } },
    '3': { class_type: 'TestUse', inputs: { buf: ['2', 0] } },
    '4': { class_type: 'LoopEnd', inputs: { flow: ['1', 0], ...(carry ? { value1: ['2', 0] } : {}) } },
  };
}

test('iterations after the first decode into the buffer of the one before', async () => {
  const log = { got: [] as (Float32Array | undefined)[], made: [] as Float32Array[], seen: [] as number[] };
  const engine = createEngine({ nodes: nodes(log), paths, spillBytes: 0 });
  expect((await engine.run(prompt(false), { promptId: 'a' })).status).toBe('success');
  engine.close();
  expect(log.seen).toEqual([0, 1, 2, 3]);
  expect(log.got[0]).toBeUndefined();
  for (const i of [1, 2, 3]) expect(log.got[i]).toBe(log.made[0]);
});

test('a carried value is never offered back', async () => {
  const log = { got: [] as (Float32Array | undefined)[], made: [] as Float32Array[], seen: [] as number[] };
  const engine = createEngine({ nodes: nodes(log), paths, spillBytes: 0 });
  expect((await engine.run(prompt(true), { promptId: 'b' })).status).toBe('success');
  engine.close();
  expect(log.seen).toEqual([0, 1, 2, 3]);
  expect(log.got).toEqual([undefined, undefined, undefined, undefined]);
  expect(new Set(log.made).size).toBe(4);
});
