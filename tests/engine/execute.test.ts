// Running prompts: order, events, caching, errors and interrupts.
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { defineNode } from '../../server/engine/define.ts';
import { createEngine } from '../../server/engine/index.ts';
import type { ApiPrompt, EngineEvent } from '../../server/engine/types.ts';
import { eventsOf, setupEngine } from './setup.ts';

let t: ReturnType<typeof setupEngine>;
afterEach(() => t?.cleanup());

const chain = (b: number, label = ''): ApiPrompt => ({
  '1': { class_type: 'TestInt', inputs: { value: 2 } },
  '2': { class_type: 'TestInt', inputs: { value: b } },
  '3': { class_type: 'TestAdd', inputs: { a: ['1', 0], b: ['2', 0] } },
  '4': { class_type: 'TestAdd', inputs: { a: ['3', 0], b: 10 } },
  '5': { class_type: 'TestCollect', inputs: { value: ['4', 0], label } },
  '6': { class_type: 'TestCollect', inputs: { value: ['1', 0] } },
});

describe('execution', () => {
  test('runs what outputs need, each node once, dependencies first', async () => {
    t = setupEngine();
    const { result, events } = await t.run({
      ...chain(3),
      '7': { class_type: 'TestInt', inputs: { value: 7 } }, // needed by no output
    });
    expect(result).toMatchObject({
      status: 'success',
      outputs: { '5': { values: [15] }, '6': { values: [2] } },
    });
    expect(t.log.runs).not.toContain('7');
    expect(new Set(t.log.runs).size).toBe(t.log.runs.length);
    const pos = (id: string) => t.log.runs.indexOf(id);
    expect(pos('1')).toBeLessThan(pos('3'));
    expect(pos('2')).toBeLessThan(pos('3'));
    expect(pos('3')).toBeLessThan(pos('4'));
    expect(pos('4')).toBeLessThan(pos('5'));
    expect(events[0].type).toBe('execution_start');
    expect(events[1]).toMatchObject({ type: 'execution_cached', nodes: [] });
    expect(events.at(-1)!.type).toBe('execution_success');
    expect(eventsOf(events, 'executing').map((e) => e.node)).toEqual(t.log.runs);
    expect(eventsOf(events, 'executed').map((e) => [e.node, e.output])).toEqual([
      ['5', { values: [15] }],
      ['6', { values: [2] }],
    ]);
  });

  test('re-running unchanged executes nothing and replays output UI from the cache', async () => {
    t = setupEngine();
    await t.run(chain(3));
    t.log.reset();
    const { result, events } = await t.run(chain(3));
    expect(t.log.runs).toEqual([]);
    expect(result).toMatchObject({ status: 'success', outputs: { '5': { values: [15] } } });
    expect(eventsOf(events, 'execution_cached')[0].nodes.sort()).toEqual(['1', '2', '3', '4', '5', '6']);
    expect(eventsOf(events, 'executed').map((e) => e.node)).toEqual(['5', '6']);
  });

  test('changing one widget re-executes only that node and its dependents', async () => {
    t = setupEngine();
    await t.run(chain(3));
    t.log.reset();
    const { result, events } = await t.run(chain(4));
    expect(t.log.runs).toEqual(['2', '3', '4', '5']);
    expect(result).toMatchObject({ status: 'success', outputs: { '5': { values: [16] } } });
    expect(eventsOf(events, 'execution_cached')[0].nodes.sort()).toEqual(['1', '6']);
    // A widget on the output node itself: only that node runs.
    t.log.reset();
    await t.run(chain(4, 'relabelled'));
    expect(t.log.runs).toEqual(['5']);
  });

  test('the memory cache is bounded by bytes (LRU)', async () => {
    t = setupEngine({ cacheBytes: 10_000 });
    const prompt = (value: number, label = ''): ApiPrompt => ({
      '1': { class_type: 'TestBuffer', inputs: { value, size: 1000 } }, // 4000 bytes
      '3': { class_type: 'TestCollect', inputs: { value: ['1', 0], label } },
    });
    await t.run(prompt(1));
    await t.run(prompt(2));
    await t.run(prompt(3));
    expect(t.engine.cacheStats().memoryBytes).toBeLessThanOrEqual(10_000);
    t.log.reset();
    await t.run(prompt(3, 'again')); // the most recent buffer is still cached
    expect(t.log.runs).toEqual(['3']);
    t.log.reset();
    await t.run(prompt(1, 'again')); // the oldest buffer was evicted
    expect(t.log.runs).toEqual(['1', '3']);
    t.engine.clearCache();
    expect(t.engine.cacheStats()).toEqual({
      memoryBytes: 0,
      memoryEntries: 0,
      memoryMaxBytes: 10_000,
      spillBytes: 0,
      spillEntries: 0,
      spillMaxBytes: expect.any(Number),
    });
  });

  test('a throwing node yields execution_error naming it; the engine stays usable', async () => {
    t = setupEngine();
    const { result, events } = await t.run({
      '1': { class_type: 'TestInt', inputs: { value: 2 } },
      '2': { class_type: 'TestThrow', inputs: { message: 'kaput', value: ['1', 0] } },
      '3': { class_type: 'TestCollect', inputs: { value: ['2', 0] } },
    });
    expect(result).toMatchObject({ status: 'error', nodeId: '2', message: 'kaput' });
    const err = eventsOf(events, 'execution_error');
    expect(err).toHaveLength(1);
    expect(err[0]).toMatchObject({
      nodeId: '2',
      nodeType: 'TestThrow',
      exceptionMessage: 'kaput',
      exceptionType: 'Error',
      executed: ['1'],
      currentInputs: { message: 'kaput', value: 2 },
    });
    expect(err[0].traceback.length).toBeGreaterThan(0);
    expect(eventsOf(events, 'execution_success')).toHaveLength(0);
    const again = await t.run(chain(3));
    expect(again.result.status).toBe('success');
  });

  test('an output node of a failed run is not replayed from the cache: its file was removed', async () => {
    t = setupEngine();
    const prompt = (broken: boolean): ApiPrompt => ({
      '1': { class_type: 'TestInt', inputs: { value: 3 } },
      '2': { class_type: 'TestFileWriter', inputs: { value: ['1', 0], filename_prefix: 'out' } },
      '3': broken
        ? { class_type: 'TestThrow', inputs: { message: 'later failure' } }
        : { class_type: 'TestInt', inputs: { value: 0 } },
      '4': { class_type: 'TestCollect', inputs: { value: ['3', 0] } },
    });
    const failed = await t.run(prompt(true));
    expect(failed.result.status).toBe('error');
    expect(t.log.runs).toContain('2');
    expect(fs.readdirSync(t.paths.output)).toEqual([]);
    t.log.reset();
    const fixed = await t.run(prompt(false));
    expect(fixed.result.status).toBe('success');
    expect(t.log.runs).toContain('2');
    expect(fs.readFileSync(path.join(t.paths.output, 'out.txt'), 'utf8')).toBe('3\n');
  });

  test('error reports summarise big inputs instead of dumping them', async () => {
    t = setupEngine();
    const { events } = await t.run({
      '1': { class_type: 'TestBuffer', inputs: { value: 1, size: 100_000 } },
      '2': { class_type: 'TestThrow', inputs: { message: 'x', value: ['1', 0] } },
      '3': { class_type: 'TestCollect', inputs: { value: ['2', 0] } },
    });
    expect(eventsOf(events, 'execution_error')[0].currentInputs.value).toBe('Float32Array(100000)');
  });

  test('invalid prompts are returned as invalid, nothing runs', async () => {
    t = setupEngine();
    const { result, events } = await t.run({
      '1': { class_type: 'TestInt', inputs: { value: 5000 } },
      '2': { class_type: 'TestCollect', inputs: { value: ['1', 0] } },
    });
    expect(result.status).toBe('invalid');
    expect(events).toEqual([]);
    expect(t.log.runs).toEqual([]);
  });

  test('previews and partial UI are sent as they happen; history gets both UI parts', async () => {
    t = setupEngine();
    const { result, events } = await t.run({
      '1': { class_type: 'TestInt', inputs: { value: 4 } },
      '2': { class_type: 'TestPreview', inputs: { value: ['1', 0] } },
    });
    const previews = eventsOf(events, 'preview');
    expect(previews).toHaveLength(1);
    expect(previews[0]).toMatchObject({ node: '2', format: 'png' });
    expect([...previews[0].data]).toEqual([0x89, 0x50, 0x4e, 0x47]);
    expect(eventsOf(events, 'executed').map((e) => e.output)).toEqual([{ partial: [4] }, { final: [4] }]);
    expect(result).toMatchObject({ outputs: { '2': { partial: [4], final: [4] } } });
  });

  test('a host that shows no previews gets none; ctx.previews tells nodes so', async () => {
    t = setupEngine();
    const seen: (boolean | undefined)[] = [];
    const probe = defineNode({
      name: 'TestPreviewProbe',
      displayName: 'Test Preview Probe',
      category: 'testing',
      description: 'Output node recording ctx.previews.',
      outputNode: true,
      inputs: { required: {} },
      outputs: [],
      run(_inputs, ctx) {
        seen.push(ctx.previews);
        return { outputs: [] };
      },
    });
    const engine = createEngine({ nodes: [...t.nodes, probe], paths: t.paths });
    const prompt: ApiPrompt = {
      '1': { class_type: 'TestInt', inputs: { value: 4 } },
      '2': { class_type: 'TestPreview', inputs: { value: ['1', 0] } },
      '3': { class_type: 'TestPreviewProbe', inputs: {} },
    };
    try {
      for (const previews of [false, undefined]) {
        engine.clearCache(); // both runs execute every node
        const events: EngineEvent[] = [];
        const result = await engine.run(prompt, { promptId: 'p', previews, onEvent: (e) => events.push(e) });
        expect(result).toMatchObject({ status: 'success', outputs: { '2': { partial: [4], final: [4] } } });
        expect(eventsOf(events, 'preview')).toHaveLength(previews === false ? 0 : 1);
      }
    } finally {
      engine.close();
    }
    expect(seen).toEqual([false, true]);
  });

  test('progress events come from ctx.progress', async () => {
    t = setupEngine();
    const { events } = await t.run({
      '1': { class_type: 'TestSlow', inputs: { value: 1, steps: 3, delay_ms: 0 } },
      '2': { class_type: 'TestCollect', inputs: { value: ['1', 0] } },
    });
    expect(eventsOf(events, 'progress').map((e) => [e.node, e.value, e.max])).toEqual([
      ['1', 1, 3],
      ['1', 2, 3],
      ['1', 3, 3],
    ]);
  });
});

describe('interrupt', () => {
  test('aborting inside a node stops it, removes the partial file, and the engine stays usable', async () => {
    t = setupEngine();
    const controller = new AbortController();
    const prompt: ApiPrompt = {
      '1': { class_type: 'LoopStart', inputs: { iterations: 50 } },
      '2': { class_type: 'TestSlow', inputs: { value: ['1', 1], steps: 4, delay_ms: 5 } },
      '3': { class_type: 'TestFileWriter', inputs: { value: ['2', 0], filename_prefix: 'clip' } },
      '4': { class_type: 'LoopEnd', inputs: { flow: ['1', 0] } },
    };
    const events: string[] = [];
    const pending = t.engine.run(prompt, {
      promptId: 'int',
      signal: controller.signal,
      onEvent: (e) => {
        events.push(e.type);
        // Interrupt in the middle of the third clip's slow node.
        if (e.type === 'progress' && e.iteration === 2 && e.value === 2) controller.abort();
      },
    });
    const result = await pending;
    expect(result).toMatchObject({ status: 'interrupted', nodeId: '2' });
    expect(events.at(-1)).toBe('execution_interrupted');
    expect(t.log.count('2')).toBe(3);
    expect(fs.readdirSync(t.paths.output)).toEqual([]);

    // Usable afterwards, and the completed clips' slow-node outputs were cached.
    t.log.reset();
    const { result: again } = await t.run({
      ...prompt,
      '1': { class_type: 'LoopStart', inputs: { iterations: 3 } },
    });
    expect(again.status).toBe('success');
    expect(t.log.count('2')).toBe(1);
    expect(fs.readFileSync(path.join(t.paths.output, 'clip.txt'), 'utf8')).toBe('0\n1\n2\n');
  });

  test('an already aborted signal interrupts before any node runs', async () => {
    t = setupEngine();
    const { result, events } = await t.run(chain(1), AbortSignal.abort());
    expect(result.status).toBe('interrupted');
    expect(t.log.runs).toEqual([]);
    expect(eventsOf(events, 'execution_interrupted')).toHaveLength(1);
  });
});
