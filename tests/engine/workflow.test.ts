// Workflow JSON → API prompt: API format is checked, canvas (litegraph) format is converted, with
// the node types' widgets read from their declarations (CLI, server) or from /object_info (editor).
import os from 'node:os';
import path from 'node:path';
import { describe, expect, test } from 'vitest';
import {
  canvasToApi,
  createRegistry,
  objectInfoLookup,
  toApiPrompt,
  widgetsFromObjectInfo,
  WorkflowFormatError,
} from '../../server/engine/index.ts';
import { testNodes } from '../helpers/engine-nodes.ts';

type Link = [number, number, number, number, number, string];

/** A canvas workflow exercising every conversion rule, with links as v0.4 arrays. */
function canvas(links: Link[]) {
  return {
    last_node_id: 12,
    last_link_id: 9,
    version: 0.4,
    groups: [],
    config: {},
    extra: {},
    links,
    nodes: [
      {
        id: 1,
        type: 'TestInt',
        mode: 0,
        outputs: [{ name: 'INT', type: 'INT', links: [1, 5] }],
        widgets_values: [5],
      },
      {
        id: 2,
        type: 'TestAdd',
        mode: 0,
        title: 'Adder',
        // 'a' is a widget converted to an input and linked; ComfyUI still saves its value (0).
        inputs: [{ name: 'a', type: 'INT', link: 1, widget: { name: 'a' } }],
        outputs: [{ name: 'INT', type: 'INT', links: [2] }],
        // a, b, seed, then the seed's control_after_generate value
        widgets_values: [0, 7, 3, 'randomize'],
      },
      {
        id: 3,
        type: 'Reroute',
        mode: 0,
        inputs: [{ name: '', type: '*', link: 2 }],
        outputs: [{ name: '', type: 'INT', links: [3] }],
      },
      {
        id: 4,
        type: 'TestCollect',
        mode: 0,
        inputs: [{ name: 'value', type: '*', link: 3 }],
        widgets_values: ['sum'],
      },
      { id: 5, type: 'Note', mode: 0, widgets_values: ['remember the milk'] },
      { id: 6, type: 'MarkdownNote', mode: 0, widgets_values: ['# notes'] },
      {
        id: 7,
        type: 'TestCollect',
        mode: 2, // muted: dropped
        inputs: [{ name: 'value', type: '*', link: 4 }],
        widgets_values: ['muted'],
      },
      {
        id: 8,
        type: 'TestAdd',
        mode: 4, // bypassed: its INT output is fed by its first INT input
        inputs: [{ name: 'a', type: 'INT', link: 5, widget: { name: 'a' } }],
        outputs: [{ name: 'INT', type: 'INT', links: [6] }],
        widgets_values: [0, 1, 0, 'fixed'],
      },
      {
        id: 9,
        type: 'TestCollect',
        mode: 0,
        inputs: [{ name: 'value', type: '*', link: 6 }],
        widgets_values: ['bypassed'],
      },
      {
        id: 10,
        type: 'PrimitiveNode',
        mode: 0,
        outputs: [{ name: 'INT', type: 'INT', links: [7], widget: { name: 'b' } }],
        widgets_values: [42, 'fixed'],
      },
      {
        id: 11,
        type: 'TestAdd',
        mode: 0,
        inputs: [
          { name: 'a', type: 'INT', link: 8, widget: { name: 'a' } },
          { name: 'b', type: 'INT', link: 7, widget: { name: 'b' } },
        ],
        outputs: [{ name: 'INT', type: 'INT', links: [9] }],
        // An editor that leaves out linked widgets: only seed and its control value remain.
        widgets_values: [9, 'increment'],
      },
      {
        id: 12,
        type: 'TestCollect',
        mode: 0,
        inputs: [{ name: 'value', type: '*', link: 9 }],
        widgets_values: ['primitive'],
      },
    ],
  };
}

const links: Link[] = [
  [1, 1, 0, 2, 0, 'INT'],
  [2, 2, 0, 3, 0, 'INT'],
  [3, 3, 0, 4, 0, 'INT'],
  [4, 2, 0, 7, 0, 'INT'],
  [5, 1, 0, 8, 0, 'INT'],
  [6, 8, 0, 9, 0, 'INT'],
  [7, 10, 0, 11, 1, 'INT'],
  [8, 1, 0, 11, 0, 'INT'],
  [9, 11, 0, 12, 0, 'INT'],
];

const expected = {
  '1': { class_type: 'TestInt', inputs: { value: 5 }, _meta: { title: 'Test Int' } },
  '2': { class_type: 'TestAdd', inputs: { a: ['1', 0], b: 7, seed: 3 }, _meta: { title: 'Adder' } },
  '4': {
    class_type: 'TestCollect',
    inputs: { value: ['2', 0], label: 'sum' },
    _meta: { title: 'Test Collect' },
  },
  '9': {
    class_type: 'TestCollect',
    inputs: { value: ['1', 0], label: 'bypassed' },
    _meta: { title: 'Test Collect' },
  },
  '11': { class_type: 'TestAdd', inputs: { a: ['1', 0], b: 42, seed: 9 }, _meta: { title: 'Test Add' } },
  '12': {
    class_type: 'TestCollect',
    inputs: { value: ['11', 0], label: 'primitive' },
    _meta: { title: 'Test Collect' },
  },
};

describe('canvas → API conversion', () => {
  test('v0.4 link arrays: widgets in input order, seed control skipped, mute, bypass, reroute, notes, primitive', () => {
    expect(toApiPrompt(canvas(links), testNodes)).toEqual(expected);
  });

  test('v1 link objects convert the same way', () => {
    const v1 = {
      ...canvas([]),
      version: 1,
      links: links.map(([id, origin_id, origin_slot, target_id, target_slot, type]) => ({
        id,
        origin_id,
        origin_slot,
        target_id,
        target_slot,
        type,
      })),
    };
    expect(toApiPrompt(v1, testNodes)).toEqual(expected);
  });

  test('widgets_values saved as an object map by name', () => {
    const prompt = toApiPrompt(
      {
        nodes: [
          { id: 1, type: 'TestInt', widgets_values: { value: 4 } },
          { id: 2, type: 'TestCollect', inputs: [{ name: 'value', type: '*', link: 1 }], widgets_values: [] },
        ],
        links: [[1, 1, 0, 2, 0, 'INT']],
      },
      testNodes,
    );
    expect(prompt['1'].inputs).toEqual({ value: 4 });
    // A missing widget value takes the declared default.
    expect(prompt['2'].inputs).toEqual({ value: ['1', 0], label: '' });
  });

  test('list values are wrapped so they are not read as links', () => {
    const prompt = toApiPrompt(
      {
        nodes: [
          {
            id: 1,
            type: 'PrimitiveNode',
            outputs: [{ name: 'x', type: '*', links: [1] }],
            widgets_values: [['2', 0]],
          },
          {
            id: 2,
            type: 'TestCollect',
            inputs: [{ name: 'value', type: '*', link: 1 }],
            widgets_values: ['x'],
          },
        ],
        links: [[1, 1, 0, 2, 0, '*']],
      },
      testNodes,
    );
    expect(prompt['2'].inputs.value).toEqual({ __value__: ['2', 0] });
  });

  test('unknown node types pass through for validation to report', () => {
    const prompt = toApiPrompt(
      { nodes: [{ id: 3, type: 'Mystery', widgets_values: [1] }], links: [] },
      testNodes,
    );
    expect(prompt['3'].class_type).toBe('Mystery');
  });

  test('malformed canvas JSON is a WorkflowFormatError naming the field', () => {
    expect(() => toApiPrompt({ nodes: [{ id: 1 }], links: [] }, testNodes)).toThrow(WorkflowFormatError);
    expect(() => toApiPrompt({ nodes: [{ id: 1 }], links: [] }, testNodes)).toThrow(/nodes\.0\.type/);
  });
});

describe("widgets read from /object_info (the editor's side)", () => {
  const dir = path.join(os.tmpdir(), 'rdflow-workflow-test');
  const paths = { output: dir, input: dir, temp: dir, models: dir };
  const lookup = objectInfoLookup(createRegistry(testNodes).objectInfo({ paths }));

  test('convert every canvas rule to the prompt the node declarations give', () => {
    expect(canvasToApi(canvas(links), lookup)).toEqual(expected);
  });

  test('are the widget inputs in input_order, with combos, seed control and defaults', () => {
    const widgets = widgetsFromObjectInfo({
      display_name: 'Sampler',
      input: {
        required: {
          latent: ['LATENT'],
          seed: ['INT', { default: 0, control_after_generate: true }],
          mode: [['a', 'b'], { default: 'b' }],
        },
        optional: { label: ['STRING', { default: '' }], kind: [['x', 'y']] },
      },
      input_order: { required: ['mode', 'latent', 'seed'], optional: ['kind', 'label'] },
    });
    expect(widgets).toEqual({
      displayName: 'Sampler',
      widgets: [
        { name: 'mode', kind: 'COMBO', default: 'b' },
        { name: 'seed', kind: 'INT', default: 0, controlAfterGenerate: true },
        { name: 'kind', kind: 'COMBO' },
        { name: 'label', kind: 'STRING', default: '' },
      ],
    });
  });

  test('an unknown class is sent without widgets, for validation to report', () => {
    const prompt = canvasToApi({ nodes: [{ id: 3, type: 'toString', widgets_values: [1] }] }, lookup);
    expect(prompt['3']).toEqual({ class_type: 'toString', inputs: {}, _meta: { title: 'toString' } });
  });
});

describe('API format', () => {
  test('is returned as is after a shape check', () => {
    const api = {
      '1': { class_type: 'TestInt', inputs: { value: 1 } },
      '2': { class_type: 'TestCollect', inputs: { value: ['1', 0], label: { __value__: [1, 2] } } },
    };
    expect(toApiPrompt(api, testNodes)).toEqual(api);
  });

  test('the POST /prompt body shape is accepted', () => {
    const api = { '1': { class_type: 'TestInt', inputs: { value: 1 } } };
    expect(toApiPrompt({ prompt: api, client_id: 'x' }, testNodes)).toEqual(api);
  });

  test('shape errors say where', () => {
    expect(() => toApiPrompt({ '1': { inputs: {} } }, testNodes)).toThrow(/1\.class_type/);
    expect(() => toApiPrompt([], testNodes)).toThrow(WorkflowFormatError);
    expect(() => toApiPrompt({}, testNodes)).toThrow(/no nodes/);
  });
});
