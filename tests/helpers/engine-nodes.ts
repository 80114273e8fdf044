// Small node types for engine, CLI and server tests. `createTestNodes()` returns fresh definitions
// with their own log, so a test can count which nodes ran and what they received.
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { defineNode, input, output, type AnyNodeDef, type NodePaths } from '../../server/engine/define.ts';
import { loopEndNode, loopStartNode } from '../../nodes/loop.ts';
import { intMathNode } from '../../nodes/utility.ts';

export interface TestLog {
  /** Node ids in the order they executed (one entry per execution, per iteration). */
  runs: string[];
  /** What TestCollect nodes received, per node id, in order. */
  collected: Map<string, unknown[]>;
  /** Loop position seen by TestCollect nodes inside loops. */
  positions: Map<string, { iteration: number; iterations: number }[]>;
  /**
   * TestBuffer allocations not yet finalized: call gc(), then let a few timer ticks pass for the
   * finalization callbacks (see tests/engine/fixtures/release-probe.ts).
   */
  liveBuffers: () => number;
  count(nodeId: string): number;
  reset(): void;
}

export function createTestNodes(): { nodes: AnyNodeDef[]; log: TestLog } {
  const runs: string[] = [];
  const collected = new Map<string, unknown[]>();
  const positions = new Map<string, { iteration: number; iterations: number }[]>();
  let live = 0;
  const registry = new FinalizationRegistry<null>(() => {
    live--;
  });
  const log: TestLog = {
    runs,
    collected,
    positions,
    liveBuffers: () => live,
    count: (id) => runs.filter((r) => r === id).length,
    reset() {
      runs.length = 0;
      collected.clear();
      positions.clear();
    },
  };

  const intConst = defineNode({
    name: 'TestInt',
    displayName: 'Test Int',
    category: 'testing',
    description: 'Outputs its value.',
    inputs: { required: { value: input.int({ default: 0, min: -1000, max: 1000 }) } },
    outputs: [output<number>('INT', 'INT')],
    run({ value }, ctx) {
      runs.push(ctx.nodeId);
      return { outputs: [value] };
    },
  });

  const stringConst = defineNode({
    name: 'TestString',
    displayName: 'Test String',
    category: 'testing',
    description: 'Outputs its text.',
    inputs: { required: { text: input.string({ default: '', multiline: true }) } },
    outputs: [output<string>('STRING', 'STRING')],
    run({ text }, ctx) {
      runs.push(ctx.nodeId);
      return { outputs: [text] };
    },
  });

  const add = defineNode({
    name: 'TestAdd',
    displayName: 'Test Add',
    category: 'testing',
    description: 'a + b, with a seed widget (control_after_generate) that is added too.',
    inputs: {
      required: { a: input.int({ default: 0 }), b: input.int({ default: 0 }) },
      optional: { seed: input.int({ default: 0, min: 0, max: 1000, controlAfterGenerate: true }) },
    },
    outputs: [output<number>('INT', 'INT')],
    run({ a, b, seed }, ctx) {
      runs.push(ctx.nodeId);
      return { outputs: [a + b + (seed ?? 0)] };
    },
  });

  const slow = defineNode({
    name: 'TestSlow',
    displayName: 'Test Slow',
    category: 'testing',
    description:
      'Passes value through after `steps` steps of `delay_ms`, reporting progress and checking the signal.',
    inputs: {
      required: {
        value: input.int({ default: 0 }),
        steps: input.int({ default: 5, min: 1, max: 1000 }),
        delay_ms: input.int({ default: 10, min: 0, max: 10_000 }),
      },
    },
    outputs: [output<number>('INT', 'INT')],
    async run({ value, steps, delay_ms }, ctx) {
      runs.push(ctx.nodeId);
      for (let s = 0; s < steps; s++) {
        ctx.signal.throwIfAborted();
        await sleep(delay_ms, undefined, { signal: ctx.signal });
        ctx.progress(s + 1, steps);
      }
      return { outputs: [value] };
    },
  });

  const thrower = defineNode({
    name: 'TestThrow',
    displayName: 'Test Throw',
    category: 'testing',
    description: 'Throws an error with its message.',
    inputs: {
      required: { message: input.string({ default: 'boom' }) },
      optional: { value: input.link<unknown>('*') },
    },
    outputs: [output<number>('INT', 'INT')],
    run({ message }, ctx) {
      runs.push(ctx.nodeId);
      throw new Error(message);
    },
  });

  const collect = defineNode({
    name: 'TestCollect',
    displayName: 'Test Collect',
    category: 'testing',
    description: 'Output node: records what it receives and reports it as UI output.',
    outputNode: true,
    inputs: {
      required: { value: input.link<unknown>('*') },
      optional: { label: input.string({ default: '' }) },
    },
    outputs: [],
    run({ value }, ctx) {
      runs.push(ctx.nodeId);
      collected.set(ctx.nodeId, [...(collected.get(ctx.nodeId) ?? []), value]);
      if (ctx.loop) positions.set(ctx.nodeId, [...(positions.get(ctx.nodeId) ?? []), { ...ctx.loop }]);
      const shown = value instanceof Float32Array ? `Float32Array(${value.length})` : value;
      return { outputs: [], ui: { values: [shown] } };
    },
  });

  const fileWriter = defineNode({
    name: 'TestFileWriter',
    displayName: 'Test File Writer',
    category: 'testing',
    description:
      'Output node that streams one line per run (per loop iteration) to a temp file and renames it ' +
      'to its final name when the prompt succeeds; the temp file is removed otherwise.',
    outputNode: true,
    inputs: {
      required: { value: input.link<unknown>('*'), filename_prefix: input.string({ default: 'test' }) },
      optional: { delay_ms: input.int({ default: 0, min: 0, max: 10_000 }) },
    },
    outputs: [],
    async run({ value, filename_prefix, delay_ms }, ctx) {
      runs.push(ctx.nodeId);
      const filename = `${filename_prefix}.txt`;
      const final = path.join(ctx.paths.output, filename);
      let temp = ctx.state.temp as string | undefined;
      if (!temp) {
        temp = `${final}.${process.pid}.partial`;
        fs.mkdirSync(ctx.paths.output, { recursive: true });
        fs.writeFileSync(temp, '');
        ctx.state.temp = temp;
        const tempPath = temp;
        ctx.onRunEnd((outcome) => {
          if (outcome.ok) fs.renameSync(tempPath, final);
          else fs.rmSync(tempPath, { force: true });
        });
      }
      fs.appendFileSync(temp, `${JSON.stringify(value)}\n`);
      if (delay_ms) await sleep(delay_ms, undefined, { signal: ctx.signal });
      return { outputs: [], ui: { images: [{ filename, subfolder: '', type: 'output' }] } };
    },
  });

  const buffer = defineNode({
    name: 'TestBuffer',
    displayName: 'Test Buffer',
    category: 'testing',
    description: 'Allocates a Float32Array of `size` floats filled with `value`.',
    inputs: {
      required: {
        value: input.int({ default: 0 }),
        size: input.int({ default: 1024, min: 1, max: 1 << 24 }),
      },
    },
    outputs: [output<Float32Array>('BUFFER', 'BUFFER')],
    run({ value, size }, ctx) {
      runs.push(ctx.nodeId);
      const data = new Float32Array(size).fill(value);
      live++;
      registry.register(data, null);
      return { outputs: [data] };
    },
  });

  const bufferSum = defineNode({
    name: 'TestBufferSum',
    displayName: 'Test Buffer Sum',
    category: 'testing',
    description: 'Sum of a buffer (as an INT).',
    inputs: { required: { buffer: input.link<Float32Array>('BUFFER') } },
    outputs: [output<number>('INT', 'INT')],
    run({ buffer: data }, ctx) {
      runs.push(ctx.nodeId);
      let s = 0;
      for (const x of data) s += x;
      return { outputs: [Math.round(s)] };
    },
  });

  const choice = defineNode({
    name: 'TestChoice',
    displayName: 'Test Choice',
    category: 'testing',
    description: 'A COMBO whose options are computed, plus a validate hook rejecting the text "bad".',
    inputs: {
      required: {
        mode: input.combo(() => ['fast', 'slow'], {
          default: 'fast',
          acceptOther: (v) => v.startsWith('custom:'),
        }),
        text: input.string({ default: '' }),
        strength: input.float({ default: 0.5, min: 0, max: 1 }),
        enabled: input.boolean({ default: true }),
      },
    },
    outputs: [output<string>('STRING', 'STRING')],
    async validate(inputs) {
      await Promise.resolve();
      return inputs.text === 'bad' ? [{ input: 'text', message: 'the text must not be "bad"' }] : undefined;
    },
    run({ mode, text }, ctx) {
      runs.push(ctx.nodeId);
      return { outputs: [`${mode}:${text}`] };
    },
  });

  const latentSource = defineNode({
    name: 'TestLatent',
    displayName: 'Test Latent',
    category: 'testing',
    description: 'Outputs a LATENT-typed value (for socket type checks).',
    inputs: { required: { value: input.int({ default: 0 }) } },
    outputs: [output<{ value: number }>('LATENT', 'LATENT')],
    run({ value }, ctx) {
      runs.push(ctx.nodeId);
      return { outputs: [{ value }] };
    },
  });

  const latentSink = defineNode({
    name: 'TestLatentSink',
    displayName: 'Test Latent Sink',
    category: 'testing',
    description: 'Output node taking a LATENT link.',
    outputNode: true,
    inputs: { required: { latent: input.link<{ value: number }>('LATENT') } },
    outputs: [],
    run(_inputs, ctx) {
      runs.push(ctx.nodeId);
      return { outputs: [], ui: {} };
    },
  });

  const preview = defineNode({
    name: 'TestPreview',
    displayName: 'Test Preview',
    category: 'testing',
    description: 'Output node: sends a PNG preview and a partial UI output, then its final UI.',
    outputNode: true,
    inputs: { required: { value: input.link<unknown>('*') } },
    outputs: [],
    run({ value }, ctx) {
      runs.push(ctx.nodeId);
      ctx.preview({ format: 'png', data: new Uint8Array([0x89, 0x50, 0x4e, 0x47]) });
      ctx.emitUi({ partial: [value] });
      return { outputs: [], ui: { final: [value] } };
    },
  });

  const nodes = [
    intConst,
    stringConst,
    add,
    slow,
    thrower,
    collect,
    fileWriter,
    buffer,
    bufferSum,
    choice,
    latentSource,
    latentSink,
    preview,
    loopStartNode,
    loopEndNode,
    intMathNode,
  ];
  return { nodes, log };
}

/** Ready-made node list for tests that don't inspect the log. */
export const testNodes: readonly AnyNodeDef[] = createTestNodes().nodes;

/** Output/input/temp/models folders under a fresh temp dir. */
export function makeTestPaths(root: string): NodePaths {
  return {
    output: path.join(root, 'output'),
    input: path.join(root, 'input'),
    temp: path.join(root, 'temp'),
    models: path.join(root, 'models'),
  };
}
