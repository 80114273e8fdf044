// Planning: needed nodes only, dependencies first, loops collapsed into steps with their bodies.
import { expect, test } from 'vitest';
import { buildGraph } from '../../server/engine/graph.ts';
import { planPrompt, type Step } from '../../server/engine/plan.ts';
import { createRegistry } from '../../server/engine/registry.ts';
import type { ApiPrompt } from '../../server/engine/types.ts';
import { testNodes } from '../helpers/engine-nodes.ts';

const registry = createRegistry(testNodes);

function plan(prompt: ApiPrompt, outputs: string[]): Step[] {
  const planned = planPrompt(buildGraph(prompt), registry, outputs);
  if (!planned.plan) throw new Error(planned.issues.map((i) => i.message).join('; '));
  return planned.plan.steps;
}

test('only what the outputs need, dependencies first', () => {
  const steps = plan(
    {
      '5': { class_type: 'TestCollect', inputs: { value: ['3', 0] } },
      '3': { class_type: 'TestAdd', inputs: { a: ['1', 0], b: ['2', 0] } },
      '2': { class_type: 'TestInt', inputs: { value: 1 } },
      '1': { class_type: 'TestInt', inputs: { value: 1 } },
      '9': { class_type: 'TestInt', inputs: { value: 1 } },
    },
    ['5'],
  );
  expect(steps).toEqual(['1', '2', '3', '5'].map((id) => ({ kind: 'node', id })));
});

test('a loop is one step: its body holds what depends on the LoopStart, plus the LoopEnd', () => {
  const steps = plan(
    {
      '1': { class_type: 'TestInt', inputs: { value: 1 } },
      '2': { class_type: 'LoopStart', inputs: { iterations: 3, initial_value1: ['1', 0] } },
      '3': { class_type: 'TestAdd', inputs: { a: ['2', 2], b: ['1', 0] } },
      '4': { class_type: 'LoopEnd', inputs: { flow: ['2', 0], value1: ['3', 0] } },
      '5': { class_type: 'TestCollect', inputs: { value: ['4', 0] } },
      '6': { class_type: 'TestCollect', inputs: { value: ['3', 0] } },
    },
    ['5', '6'],
  );
  expect(steps).toEqual([
    { kind: 'node', id: '1' },
    {
      kind: 'loop',
      start: '2',
      end: '4',
      body: [
        { kind: 'node', id: '3' },
        { kind: 'node', id: '4' },
        { kind: 'node', id: '6' },
      ],
    },
    { kind: 'node', id: '5' },
  ]);
});

test('a LoopEnd is planned even when no output uses its values', () => {
  const steps = plan(
    {
      '1': { class_type: 'LoopStart', inputs: { iterations: 2 } },
      '2': { class_type: 'TestCollect', inputs: { value: ['1', 1] } },
      '3': { class_type: 'LoopEnd', inputs: { flow: ['1', 0] } },
    },
    ['2'],
  );
  expect(steps).toEqual([
    {
      kind: 'loop',
      start: '1',
      end: '3',
      body: [
        { kind: 'node', id: '2' },
        { kind: 'node', id: '3' },
      ],
    },
  ]);
});
