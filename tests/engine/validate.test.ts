// Validation reports every problem before anything runs, in ComfyUI's node_errors shape.
import os from 'node:os';
import { afterEach, describe, expect, test } from 'vitest';
import { planPrompt } from '../../server/engine/plan.ts';
import { createRegistry } from '../../server/engine/registry.ts';
import type { ApiPrompt, ValidationResult } from '../../server/engine/types.ts';
import { validatePrompt } from '../../server/engine/validate.ts';
import { makeTestPaths, testNodes } from '../helpers/engine-nodes.ts';
import { setupEngine } from './setup.ts';

let t: ReturnType<typeof setupEngine>;
afterEach(() => t?.cleanup());

async function invalid(prompt: ApiPrompt): Promise<ValidationResult & { ok: false }> {
  t = setupEngine();
  const result = await t.engine.validate(prompt);
  if (result.ok) throw new Error('expected the prompt to be invalid');
  return result;
}

function errorsOf(result: ValidationResult & { ok: false }, nodeId: string) {
  return result.nodeErrors[nodeId]?.errors ?? [];
}

describe('validation errors', () => {
  test('a valid prompt lists its output nodes', async () => {
    t = setupEngine();
    const result = await t.engine.validate({
      '1': { class_type: 'TestInt', inputs: { value: 1 } },
      '2': { class_type: 'TestCollect', inputs: { value: ['1', 0] } },
    });
    expect(result).toEqual({ ok: true, outputs: ['2'] });
  });

  test('required_input_missing names the input', async () => {
    const r = await invalid({
      '1': { class_type: 'TestAdd', inputs: { a: 1 } },
      '2': { class_type: 'TestCollect', inputs: { value: ['1', 0] } },
    });
    expect(r.error.type).toBe('prompt_outputs_failed_validation');
    expect(errorsOf(r, '1')).toMatchObject([
      {
        type: 'required_input_missing',
        extra_info: { input_name: 'b' },
        message: expect.stringContaining("'b'"),
      },
    ]);
    expect(r.nodeErrors['1'].class_type).toBe('TestAdd');
    expect(r.nodeErrors['1'].dependent_outputs).toEqual(['2']);
  });

  test('bad_linked_input: missing node and missing output index', async () => {
    const r = await invalid({
      '1': { class_type: 'TestInt', inputs: { value: 1 } },
      '2': { class_type: 'TestAdd', inputs: { a: ['9', 0], b: ['1', 3] } },
      '3': { class_type: 'TestCollect', inputs: { value: ['2', 0] } },
    });
    const errors = errorsOf(r, '2');
    expect(errors.map((e) => [e.type, e.extra_info.input_name, e.extra_info.linked_node])).toEqual([
      ['bad_linked_input', 'a', ['9', 0]],
      ['bad_linked_input', 'b', ['1', 3]],
    ]);
    expect(errors[0].message).toContain('node 9');
    expect(errors[1].message).toContain('output 3');
  });

  test('bad_linked_input: a bare list that is not [node id, output index], even on a "*" input', async () => {
    const r = await invalid({
      '1': { class_type: 'TestInt', inputs: { value: 1 } },
      '2': { class_type: 'TestCollect', inputs: { value: ['1', 0, ''] } },
      '3': { class_type: 'TestCollect', inputs: { value: ['1', 'x'] } },
      '4': { class_type: 'TestCollect', inputs: { value: { __value__: ['1', 'x'] } } },
    });
    for (const id of ['2', '3'])
      expect(errorsOf(r, id).map((e) => [e.type, e.extra_info.input_name])).toEqual([
        ['bad_linked_input', 'value'],
      ]);
    expect(errorsOf(r, '2')[0].message).toContain('__value__');
    // A wrapped list is a constant, which a '*' input accepts.
    expect(errorsOf(r, '4')).toEqual([]);
  });

  test('return_type_mismatch between sockets; "*" and widget kinds match', async () => {
    const r = await invalid({
      '1': { class_type: 'TestInt', inputs: { value: 1 } },
      '2': { class_type: 'TestLatentSink', inputs: { latent: ['1', 0] } },
      '3': { class_type: 'TestLatent', inputs: { value: 1 } },
      '4': { class_type: 'TestAdd', inputs: { a: ['3', 0], b: ['1', 0] } },
      '5': { class_type: 'TestCollect', inputs: { value: ['4', 0] } },
    });
    expect(errorsOf(r, '2')).toMatchObject([
      { type: 'return_type_mismatch', extra_info: { input_name: 'latent', linked_node: ['1', 0] } },
    ]);
    expect(errorsOf(r, '2')[0].message).toMatch(/expects LATENT .* is INT/);
    // TestAdd.a is an INT widget: an INT output may feed it, a LATENT may not; b (INT→INT) is fine.
    expect(errorsOf(r, '4').map((e) => [e.type, e.extra_info.input_name])).toEqual([
      ['return_type_mismatch', 'a'],
    ]);
    // TestCollect.value is '*': anything goes.
    expect(r.nodeErrors['5']).toBeUndefined();
  });

  test('invalid_input_type, value_smaller_than_min, value_bigger_than_max', async () => {
    const r = await invalid({
      '1': { class_type: 'TestInt', inputs: { value: 'seven' } },
      '2': { class_type: 'TestInt', inputs: { value: -5000 } },
      '3': { class_type: 'TestInt', inputs: { value: 5000 } },
      '4': { class_type: 'TestInt', inputs: { value: 1.5 } },
      '5': { class_type: 'TestSlow', inputs: { value: ['1', 0], steps: ['2', 0], delay_ms: ['3', 0] } },
      '6': { class_type: 'TestAdd', inputs: { a: ['4', 0], b: ['5', 0] } },
      '7': { class_type: 'TestCollect', inputs: { value: ['6', 0] } },
    });
    expect(errorsOf(r, '1')).toMatchObject([
      { type: 'invalid_input_type', extra_info: { input_name: 'value', received_value: 'seven' } },
    ]);
    expect(errorsOf(r, '2')).toMatchObject([
      { type: 'value_smaller_than_min', extra_info: { input_name: 'value' } },
    ]);
    expect(errorsOf(r, '2')[0].message).toContain('-1000');
    expect(errorsOf(r, '3')).toMatchObject([
      { type: 'value_bigger_than_max', extra_info: { input_name: 'value' } },
    ]);
    expect(errorsOf(r, '4')).toMatchObject([{ type: 'invalid_input_type' }]);
    // input_config is the /object_info entry of the input.
    expect(errorsOf(r, '3')[0].extra_info.input_config).toEqual([
      'INT',
      { default: 0, min: -1000, max: 1000, step: 1 },
    ]);
  });

  test('numeric strings are coerced like ComfyUI does', async () => {
    t = setupEngine();
    const prompt: ApiPrompt = {
      '1': { class_type: 'TestInt', inputs: { value: '42' } },
      '2': { class_type: 'TestCollect', inputs: { value: ['1', 0] } },
    };
    const { result } = await t.run(prompt);
    expect(result.status).toBe('success');
    expect(t.log.collected.get('2')).toEqual([42]);
  });

  test('value_not_in_list for a COMBO, unless acceptOther allows it; typed link inputs reject constants', async () => {
    const r = await invalid({
      '1': { class_type: 'TestChoice', inputs: { mode: 'medium', text: '', strength: 0.5, enabled: true } },
      '2': { class_type: 'TestChoice', inputs: { mode: 'custom:x', text: '', strength: 0.5, enabled: true } },
      '3': { class_type: 'TestCollect', inputs: { value: ['1', 0] } },
      '4': { class_type: 'TestCollect', inputs: { value: ['2', 0] } },
      '5': { class_type: 'TestLatentSink', inputs: { latent: 3 } },
    });
    expect(errorsOf(r, '1')).toMatchObject([
      { type: 'value_not_in_list', extra_info: { input_name: 'mode', received_value: 'medium' } },
    ]);
    expect(errorsOf(r, '1')[0].message).toContain('fast, slow');
    expect(r.nodeErrors['2']).toBeUndefined();
    expect(errorsOf(r, '5')).toMatchObject([
      { type: 'invalid_input_type', extra_info: { input_name: 'latent' } },
    ]);
  });

  test('custom_validation_failed from an async validate() hook', async () => {
    const r = await invalid({
      '1': { class_type: 'TestChoice', inputs: { mode: 'fast', text: 'bad', strength: 0.5, enabled: true } },
      '2': { class_type: 'TestCollect', inputs: { value: ['1', 0] } },
    });
    expect(errorsOf(r, '1')).toMatchObject([
      {
        type: 'custom_validation_failed',
        extra_info: { input_name: 'text' },
        message: expect.stringContaining('bad'),
      },
    ]);
  });

  test('unknown class is reported with the node id', async () => {
    const r = await invalid({
      '1': { class_type: 'NoSuchNode', inputs: {} },
      '2': { class_type: 'TestCollect', inputs: { value: ['1', 0] } },
    });
    expect(errorsOf(r, '1')).toMatchObject([
      { type: 'missing_node_type', message: expect.stringContaining('NoSuchNode') },
    ]);
    expect(r.nodeErrors['1'].dependent_outputs).toEqual(['2']);
  });

  test('prompt_no_outputs when no output node exists', async () => {
    const r = await invalid({ '1': { class_type: 'TestInt', inputs: { value: 1 } } });
    expect(r.error.type).toBe('prompt_no_outputs');
  });

  test('invalid_prompt for a malformed prompt', async () => {
    const r = await invalid({ '1': { inputs: {} } } as unknown as ApiPrompt);
    expect(r.error.type).toBe('invalid_prompt');
    expect(r.error.message).toContain('class_type');
  });

  test('all errors at once, across nodes', async () => {
    const r = await invalid({
      '1': { class_type: 'TestInt', inputs: { value: 5000 } },
      '2': { class_type: 'TestAdd', inputs: { a: ['1', 0] } },
      '3': { class_type: 'TestChoice', inputs: { mode: 'nope', text: 'bad', strength: 2, enabled: true } },
      '4': { class_type: 'TestCollect', inputs: { value: ['2', 0] } },
      '5': { class_type: 'TestCollect', inputs: { value: ['3', 0] } },
    });
    const all = Object.entries(r.nodeErrors).flatMap(([id, e]) => e.errors.map((x) => `${id}:${x.type}`));
    expect(all.sort()).toEqual(
      [
        '1:value_bigger_than_max',
        '2:required_input_missing',
        '3:value_not_in_list',
        '3:value_bigger_than_max',
        '3:custom_validation_failed',
      ].sort(),
    );
    expect(r.nodeErrors['1'].dependent_outputs).toEqual(['4']);
    expect(r.nodeErrors['3'].dependent_outputs).toEqual(['5']);
  });

  test('nodes no output needs are not validated', async () => {
    t = setupEngine();
    const result = await t.engine.validate({
      '1': { class_type: 'TestInt', inputs: { value: 1 } },
      '2': { class_type: 'TestCollect', inputs: { value: ['1', 0] } },
      '3': { class_type: 'TestInt', inputs: { value: 99999 } },
    });
    expect(result.ok).toBe(true);
  });
});

describe('graph structure errors', () => {
  test('a cycle outside a loop construct', async () => {
    const r = await invalid({
      '1': { class_type: 'TestAdd', inputs: { a: ['2', 0], b: 1 } },
      '2': { class_type: 'TestAdd', inputs: { a: ['1', 0], b: 1 } },
      '3': { class_type: 'TestCollect', inputs: { value: ['2', 0] } },
    });
    expect(errorsOf(r, '1')).toMatchObject([{ type: 'dependency_cycle' }]);
    expect(errorsOf(r, '2')).toMatchObject([{ type: 'dependency_cycle' }]);
    expect(errorsOf(r, '1')[0].message).toMatch(/cycle/i);
  });

  test('LoopEnd flow must come from a LoopStart', async () => {
    const r = await invalid({
      '1': { class_type: 'TestInt', inputs: { value: 1 } },
      '2': { class_type: 'LoopEnd', inputs: { flow: ['1', 0], value1: ['1', 0] } },
      '3': { class_type: 'TestCollect', inputs: { value: ['2', 0] } },
    });
    const types = errorsOf(r, '2').map((e) => e.type);
    // INT is not LOOP (socket check) and the loop structure check names the problem.
    expect(types).toContain('return_type_mismatch');
    expect(types).toContain('custom_validation_failed');
    expect(errorsOf(r, '2').find((e) => e.type === 'custom_validation_failed')!.message).toContain(
      'LoopStart',
    );
  });

  test('a node may not use both a loop body value and the loop result', async () => {
    const r = await invalid({
      '1': { class_type: 'LoopStart', inputs: { iterations: 3 } },
      '2': { class_type: 'TestAdd', inputs: { a: ['1', 1], b: 1 } },
      '3': { class_type: 'LoopEnd', inputs: { flow: ['1', 0], value1: ['2', 0] } },
      '4': { class_type: 'TestAdd', inputs: { a: ['2', 0], b: ['3', 0] } },
      '5': { class_type: 'TestCollect', inputs: { value: ['4', 0] } },
    });
    expect(errorsOf(r, '4')).toMatchObject([{ type: 'custom_validation_failed' }]);
    expect(errorsOf(r, '4')[0].message).toMatch(/both the loop body .* and the loop's result/);
  });

  test('a LoopStart without a LoopEnd', async () => {
    const r = await invalid({
      '1': { class_type: 'LoopStart', inputs: { iterations: 3 } },
      '2': { class_type: 'TestCollect', inputs: { value: ['1', 1] } },
    });
    expect(errorsOf(r, '1')[0].message).toContain('has no LoopEnd');
  });

  test('overlapping loops that are not nested', async () => {
    const r = await invalid({
      '1': { class_type: 'LoopStart', inputs: { iterations: 2 } },
      '2': { class_type: 'LoopStart', inputs: { iterations: 2 } },
      '3': { class_type: 'TestAdd', inputs: { a: ['1', 1], b: ['2', 1] } },
      '4': { class_type: 'LoopEnd', inputs: { flow: ['1', 0], value1: ['3', 0] } },
      '5': { class_type: 'LoopEnd', inputs: { flow: ['2', 0] } },
      '6': { class_type: 'TestCollect', inputs: { value: ['4', 0] } },
    });
    expect(errorsOf(r, '3')[0].message).toContain('neither loop is inside the other');
  });
});

describe('validatePrompt on its own', () => {
  const registry = createRegistry(testNodes);
  const env = { paths: makeTestPaths(os.tmpdir()) };

  test('gives the coerced graph to plan from, and leaves what it was given as it was', async () => {
    const prompt: ApiPrompt = {
      '1': { class_type: 'TestInt', inputs: { value: ' 42' } },
      '2': { class_type: 'TestCollect', inputs: { value: ['1', 0] } },
    };
    const before = structuredClone(prompt);
    const validated = await validatePrompt(prompt, registry, env);
    expect(validated.result).toEqual({ ok: true, outputs: ['2'] });
    expect(validated.graph?.get('1')?.literals).toEqual({ value: 42 });
    expect(prompt).toEqual(before);
    expect(planPrompt(validated.graph!, registry, ['2']).plan?.steps).toEqual([
      { kind: 'node', id: '1' },
      { kind: 'node', id: '2' },
    ]);
  });

  test('the same prompt validates to the same result twice (no state kept between calls)', async () => {
    const prompt: ApiPrompt = {
      '1': { class_type: 'TestInt', inputs: { value: 'x' } },
      '2': { class_type: 'TestCollect', inputs: { value: ['1', 0] } },
      '3': { class_type: 'NoSuchNode', inputs: {} },
    };
    const first = await validatePrompt(prompt, registry, env);
    expect(first.result.ok).toBe(false);
    expect(first.graph).toBeUndefined();
    expect((await validatePrompt(prompt, registry, env)).result).toEqual(first.result);
  });
});
