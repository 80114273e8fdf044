// /object_info is rendered from the node declarations in ComfyUI's shape.
import { expect, test } from 'vitest';
import { createRegistry } from '../../server/engine/index.ts';
import { loopEndNode, loopStartNode } from '../../nodes/loop.ts';
import { intMathNode } from '../../nodes/utility.ts';
import { makeTestPaths, testNodes } from '../helpers/engine-nodes.ts';

const env = { paths: makeTestPaths('/tmp/unused') };

test('widget, combo and link inputs, outputs and metadata', () => {
  const info = createRegistry(testNodes).objectInfo(env);
  expect(info.TestAdd).toEqual({
    input: {
      required: {
        a: ['INT', { default: 0, min: Number.MIN_SAFE_INTEGER, max: Number.MAX_SAFE_INTEGER, step: 1 }],
        b: ['INT', { default: 0, min: Number.MIN_SAFE_INTEGER, max: Number.MAX_SAFE_INTEGER, step: 1 }],
      },
      optional: { seed: ['INT', { default: 0, min: 0, max: 1000, step: 1, control_after_generate: true }] },
      hidden: {},
    },
    input_order: { required: ['a', 'b'], optional: ['seed'] },
    output: ['INT'],
    output_is_list: [false],
    output_name: ['INT'],
    name: 'TestAdd',
    display_name: 'Test Add',
    description: expect.any(String),
    category: 'testing',
    output_node: false,
    python_module: 'rdflow',
  });
  // COMBO options are evaluated when asked; FLOAT, STRING, BOOLEAN carry their settings.
  expect(info.TestChoice.input.required).toEqual({
    mode: [['fast', 'slow'], { default: 'fast' }],
    text: ['STRING', { default: '', multiline: false }],
    strength: ['FLOAT', { default: 0.5, min: 0, max: 1, step: 0.01 }],
    enabled: ['BOOLEAN', { default: true }],
  });
  expect(info.TestLatentSink.input.required.latent).toEqual(['LATENT']);
  expect(info.TestCollect.output_node).toBe(true);
});

test('loop and utility nodes as the brief declares them', () => {
  const info = createRegistry([loopStartNode, loopEndNode, intMathNode]).objectInfo(env);
  expect(info.LoopStart.input.required.iterations).toEqual([
    'INT',
    { default: 6, min: 1, max: 100000, step: 1, tooltip: expect.any(String) },
  ]);
  expect(info.LoopStart.input_order.optional).toEqual([
    'initial_value1',
    'initial_value2',
    'initial_value3',
    'initial_value4',
  ]);
  expect(info.LoopStart.output).toEqual(['LOOP', 'INT', '*', '*', '*', '*']);
  expect(info.LoopStart.output_name).toEqual(['flow', 'index', 'value1', 'value2', 'value3', 'value4']);
  expect(info.LoopEnd.input.required.flow).toEqual(['LOOP']);
  expect(info.LoopEnd.output_name).toEqual(['value1', 'value2', 'value3', 'value4']);
  expect(info.IntMath.input.required.op).toEqual([['add', 'subtract', 'multiply'], { default: 'add' }]);
  expect(info.IntMath.output).toEqual(['INT']);
});

test('duplicate class names are refused', () => {
  expect(() => createRegistry([intMathNode, intMathNode])).toThrow(/IntMath/);
});
