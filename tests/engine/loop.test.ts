// The loop construct: a LoopStart/LoopEnd pair runs its body once per iteration with carried values.
import fs from 'node:fs';
import path from 'node:path';
import v8 from 'node:v8';
import vm from 'node:vm';
import { afterEach, describe, expect, test } from 'vitest';
import type { ApiPrompt } from '../../server/engine/types.ts';
import { eventsOf, setupEngine } from './setup.ts';

let t: ReturnType<typeof setupEngine>;
afterEach(() => t?.cleanup());

/**
 * Fibonacci-like carry: value1 starts at 1; each iteration computes next = value1 + index and
 * carries it. A node outside the loop (2) feeds the body and must run once.
 */
const accumulate = (iterations: number, writerPrefix = 'acc'): ApiPrompt => ({
  '1': { class_type: 'TestInt', inputs: { value: 1 } },
  '2': { class_type: 'TestInt', inputs: { value: 100 } },
  '10': { class_type: 'LoopStart', inputs: { iterations, initial_value1: ['1', 0] } },
  '11': { class_type: 'TestAdd', inputs: { a: ['10', 2], b: ['10', 1] } },
  '12': { class_type: 'TestAdd', inputs: { a: ['11', 0], b: ['2', 0] } },
  '13': { class_type: 'TestCollect', inputs: { value: ['10', 1], label: 'index' } },
  '14': { class_type: 'TestCollect', inputs: { value: ['10', 2], label: 'carried' } },
  '15': { class_type: 'TestFileWriter', inputs: { value: ['12', 0], filename_prefix: writerPrefix } },
  '16': { class_type: 'LoopEnd', inputs: { flow: ['10', 0], value1: ['11', 0] } },
  '17': { class_type: 'TestCollect', inputs: { value: ['16', 0], label: 'final' } },
});

describe('loops', () => {
  test('iteration index and carried value are right at every iteration', async () => {
    t = setupEngine();
    const { result, events } = await t.run(accumulate(5));
    expect(result.status).toBe('success');
    expect(t.log.collected.get('13')).toEqual([0, 1, 2, 3, 4]);
    // carried: v0 = 1, v(c+1) = v(c) + c
    expect(t.log.collected.get('14')).toEqual([1, 1, 2, 4, 7]);
    expect(t.log.collected.get('17')).toEqual([11]);
    expect(t.log.positions.get('13')).toEqual([0, 1, 2, 3, 4].map((i) => ({ iteration: i, iterations: 5 })));
    // Outside nodes once, body nodes once per iteration, nodes after the loop once.
    expect(t.log.count('2')).toBe(1);
    expect(t.log.count('11')).toBe(5);
    expect(t.log.count('17')).toBe(1);
    expect(eventsOf(events, 'loop_iteration').map((e) => [e.node, e.iteration, e.iterations])).toEqual(
      [0, 1, 2, 3, 4].map((i) => ['10', i, 5]),
    );
    // The streaming writer kept its file open across iterations (ctx.state) and renamed it once at the end.
    expect(fs.readFileSync(path.join(t.paths.output, 'acc.txt'), 'utf8')).toBe('101\n102\n104\n107\n111\n');
    expect(fs.readdirSync(t.paths.output)).toEqual(['acc.txt']);
    expect(result).toMatchObject({
      outputs: { '15': { images: [{ filename: 'acc.txt', subfolder: '', type: 'output' }] } },
    });
  });

  test('progress inside a loop names the iteration', async () => {
    t = setupEngine();
    const { events } = await t.run({
      '1': { class_type: 'LoopStart', inputs: { iterations: 2 } },
      '2': { class_type: 'TestSlow', inputs: { value: ['1', 1], steps: 2, delay_ms: 0 } },
      '3': { class_type: 'TestCollect', inputs: { value: ['2', 0] } },
      '4': { class_type: 'LoopEnd', inputs: { flow: ['1', 0] } },
    });
    expect(eventsOf(events, 'progress').map((e) => [e.iteration, e.iterations, e.value, e.max])).toEqual([
      [0, 2, 1, 2],
      [0, 2, 2, 2],
      [1, 2, 1, 2],
      [1, 2, 2, 2],
    ]);
  });

  test('changing a widget of an output node inside the body re-runs only that node', async () => {
    t = setupEngine();
    await t.run(accumulate(4, 'first'));
    t.log.reset();
    const { result, events } = await t.run(accumulate(4, 'second'));
    expect(result.status).toBe('success');
    // The writer runs every iteration (it streams); everything upstream comes from the caches.
    expect(t.log.runs).toEqual(['15', '15', '15', '15']);
    expect(fs.readFileSync(path.join(t.paths.output, 'second.txt'), 'utf8')).toBe('101\n102\n104\n107\n');
    const cachedPerIteration = eventsOf(events, 'execution_cached').filter((e) => e.nodes.includes('11'));
    expect(cachedPerIteration).toHaveLength(4);
    // The collectors in the body were unchanged over the whole loop: replayed from the cache.
    for (const e of cachedPerIteration) expect(e.nodes.sort()).toEqual(['11', '12', '13', '14']);
    expect(result).toMatchObject({ outputs: { '13': { values: [0, 1, 2, 3] } } });
  });

  test('an unchanged loop runs nothing and reports its files from the cache', async () => {
    t = setupEngine();
    const first = await t.run(accumulate(4));
    t.log.reset();
    const { result, events } = await t.run(accumulate(4));
    expect(t.log.runs).toEqual([]);
    expect(result).toMatchObject({
      status: 'success',
      outputs: (first.result as { outputs: unknown }).outputs,
    });
    expect(
      eventsOf(events, 'executed')
        .map((e) => e.node)
        .sort(),
    ).toEqual(['13', '14', '15', '17']);
  });

  test('adding iterations runs only the new ones, and the streaming writer rewrites its whole file', async () => {
    t = setupEngine();
    await t.run(accumulate(4, 'four'));
    t.log.reset();
    await t.run(accumulate(5, 'five'));
    // Body nodes of iterations 0-3 come from the disk tier; the writer must see every clip.
    expect(t.log.count('11')).toBe(1);
    expect(t.log.count('15')).toBe(5);
    expect(fs.readFileSync(path.join(t.paths.output, 'five.txt'), 'utf8')).toBe('101\n102\n104\n107\n111\n');
  });

  test('changing the initial value re-runs the body chain', async () => {
    t = setupEngine();
    await t.run(accumulate(3));
    t.log.reset();
    const changed = accumulate(3);
    changed['1'] = { class_type: 'TestInt', inputs: { value: 5 } };
    await t.run(changed);
    expect(t.log.count('11')).toBe(3);
    expect(t.log.count('2')).toBe(0);
    expect(t.log.collected.get('14')).toEqual([5, 5, 6]);
  });

  test('iterations can come from a link, and IntMath derives per-iteration values', async () => {
    t = setupEngine();
    const { result } = await t.run({
      '1': { class_type: 'TestInt', inputs: { value: 3 } },
      '2': { class_type: 'LoopStart', inputs: { iterations: ['1', 0] } },
      '3': { class_type: 'IntMath', inputs: { a: 1000, b: ['2', 1], op: 'add' } },
      '4': { class_type: 'TestCollect', inputs: { value: ['3', 0] } },
      '5': { class_type: 'LoopEnd', inputs: { flow: ['2', 0] } },
    });
    expect(result.status).toBe('success');
    expect(t.log.collected.get('4')).toEqual([1000, 1001, 1002]);
  });

  test('carried values may be constants; unlinked carried values are undefined', async () => {
    t = setupEngine();
    await t.run({
      '1': { class_type: 'LoopStart', inputs: { iterations: 3, initial_value1: 'start' } },
      '2': { class_type: 'TestCollect', inputs: { value: ['1', 2] } },
      '3': { class_type: 'TestCollect', inputs: { value: ['1', 3] } },
      '4': { class_type: 'LoopEnd', inputs: { flow: ['1', 0], value1: 'next' } },
    });
    expect(t.log.collected.get('2')).toEqual(['start', 'next', 'next']);
    expect(t.log.collected.get('3')).toEqual([undefined, undefined, undefined]);
  });

  test('nested loops run the inner loop per outer iteration', async () => {
    t = setupEngine();
    const { result } = await t.run({
      '1': { class_type: 'LoopStart', inputs: { iterations: 2 } },
      '2': { class_type: 'LoopStart', inputs: { iterations: 3, initial_value1: ['1', 1] } },
      '3': { class_type: 'IntMath', inputs: { a: ['1', 1], b: 10, op: 'multiply' } },
      '4': { class_type: 'IntMath', inputs: { a: ['3', 0], b: ['2', 1], op: 'add' } },
      '5': { class_type: 'TestCollect', inputs: { value: ['4', 0] } },
      '6': { class_type: 'LoopEnd', inputs: { flow: ['2', 0], value1: ['4', 0] } },
      '7': { class_type: 'TestCollect', inputs: { value: ['6', 0] } },
      '8': { class_type: 'LoopEnd', inputs: { flow: ['1', 0] } },
    });
    expect(result.status).toBe('success');
    expect(t.log.collected.get('5')).toEqual([0, 1, 2, 10, 11, 12]);
    expect(t.log.collected.get('7')).toEqual([2, 12]);
  });

  test('an error inside the body names the node and calls onRunEnd cleanup', async () => {
    t = setupEngine();
    const { result, events } = await t.run({
      '1': { class_type: 'LoopStart', inputs: { iterations: 3 } },
      '2': { class_type: 'TestFileWriter', inputs: { value: ['1', 1], filename_prefix: 'partial' } },
      '3': { class_type: 'IntMath', inputs: { a: ['1', 1], b: 1, op: 'subtract' } },
      '4': { class_type: 'TestSlow', inputs: { value: 0, steps: ['3', 0], delay_ms: 0 } },
      '5': { class_type: 'TestCollect', inputs: { value: ['4', 0] } },
      '6': { class_type: 'LoopEnd', inputs: { flow: ['1', 0] } },
    });
    // Iteration 0 gives steps = -1: the linked widget value is checked when it arrives.
    expect(result).toMatchObject({ status: 'error', nodeId: '4' });
    expect(eventsOf(events, 'execution_error')[0].exceptionMessage).toContain("Input 'steps'");
    expect(fs.readdirSync(t.paths.output)).toEqual([]);
  });
});

describe('loop memory', () => {
  const bufferLoop = (iterations: number): ApiPrompt => ({
    '1': { class_type: 'LoopStart', inputs: { iterations } },
    '2': { class_type: 'TestBuffer', inputs: { value: ['1', 1], size: 50_000 } },
    '3': { class_type: 'TestBufferSum', inputs: { buffer: ['2', 0] } },
    // Its UI (one file name) is the same size whatever the number of iterations.
    '4': { class_type: 'TestFileWriter', inputs: { value: ['3', 0], filename_prefix: 'sums' } },
    '5': { class_type: 'LoopEnd', inputs: { flow: ['1', 0], value1: ['2', 0] } },
  });

  test('body outputs are not kept in memory: memory cache use is the same for 3 and 30 iterations', async () => {
    t = setupEngine();
    await t.run(bufferLoop(3));
    const three = t.engine.cacheStats();
    t.engine.clearCache();
    t.log.reset();
    await t.run(bufferLoop(30));
    const thirty = t.engine.cacheStats();
    expect(thirty.memoryBytes).toBe(three.memoryBytes);
    expect(thirty.memoryBytes).toBeLessThan(200_000); // not even one 200 kB buffer
    // They went to the disk tier instead, from which a re-run reads them.
    expect(thirty.spillEntries).toBeGreaterThanOrEqual(30);
    const sums = fs.readFileSync(path.join(t.paths.output, 'sums.txt'), 'utf8');
    expect(sums).toBe(Array.from({ length: 30 }, (_, i) => `${i * 50_000}\n`).join(''));
  });

  test('the disk tier is bounded by bytes and deleted with the cache', async () => {
    t = setupEngine({ spillBytes: 1_000_000 });
    await t.run(bufferLoop(30));
    expect(t.engine.cacheStats().spillBytes).toBeLessThanOrEqual(1_000_000);
    const spillDirs = () => fs.readdirSync(t.paths.temp).filter((d) => d.startsWith('rdflow-spill-'));
    expect(spillDirs()).toHaveLength(1);
    t.engine.clearCache();
    expect(spillDirs()).toHaveLength(0);
  });

  test('buffers made in earlier iterations are garbage-collected while the loop runs', async () => {
    // Node's gc() without --expose-gc: enable the flag, then fetch gc from a fresh context.
    v8.setFlagsFromString('--expose-gc');
    const gc = vm.runInNewContext('gc') as () => void;
    t = setupEngine();
    const prompt: ApiPrompt = {
      ...bufferLoop(20),
      // A timer in the body lets finalization callbacks run between iterations.
      '6': { class_type: 'TestSlow', inputs: { value: ['3', 0], steps: 1, delay_ms: 2 } },
      '4': { class_type: 'TestCollect', inputs: { value: ['6', 0] } },
    };
    const live: number[] = [];
    const result = await t.engine.run(prompt, {
      promptId: 'gc',
      onEvent: (e) => {
        if (e.type !== 'loop_iteration') return;
        live.push(t.log.liveBuffers());
        gc();
      },
    });
    expect(result.status).toBe('success');
    expect(live).toHaveLength(20);
    // Without release, iteration c would see c live buffers; here only the carried one and the current one.
    expect(Math.max(...live.slice(2))).toBeLessThanOrEqual(3);
  });

  test('within an iteration, a value is let go once the nodes that read it have run', async () => {
    t = setupEngine();
    const held: number[] = [];
    const atLoopStart: number[] = [];
    const result = await t.engine.run(
      {
        '1': { class_type: 'LoopStart', inputs: { iterations: 3 } },
        '2': { class_type: 'TestBuffer', inputs: { value: ['1', 1], size: 1000 } },
        '3': { class_type: 'TestBufferSum', inputs: { buffer: ['2', 0] } },
        '4': { class_type: 'TestBuffer', inputs: { value: ['3', 0], size: 1000 } },
        '5': { class_type: 'TestBufferSum', inputs: { buffer: ['4', 0] } },
        '6': { class_type: 'TestSlow', inputs: { value: ['5', 0], steps: 1, delay_ms: 0 } },
        '7': { class_type: 'TestCollect', inputs: { value: ['6', 0] } },
        '8': { class_type: 'TestBuffer', inputs: { value: ['1', 1], size: 10 } },
        '9': { class_type: 'LoopEnd', inputs: { flow: ['1', 0], value1: ['8', 0] } },
      },
      {
        promptId: 'release',
        onEvent: (e) => {
          if (e.type === 'loop_iteration') atLoopStart.push(t.engine.heldBodyValues());
          if (e.type === 'progress' && e.node === '6') held.push(t.engine.heldBodyValues());
        },
      },
    );
    expect(result.status).toBe('success');
    // While node 6 runs, node 5's output (its input) is held, plus from iteration 1 on the value
    // carried in from the previous iteration; 2, 3 and 4 were read already.
    expect(held).toEqual([1, 2, 2]);
    // Between iterations, only the carried value (node 8's buffer) is held.
    expect(atLoopStart).toEqual([0, 1, 1]);
    expect(t.engine.heldBodyValues()).toBe(0);
  });
});
