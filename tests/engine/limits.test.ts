// Limits are checked on the values a node actually receives: at validation where they can be
// computed before the run (constants through pure nodes such as IntMath, shapes through infer(),
// values a loop carries unchanged), and right before the node runs where they are known only then
// (the loop index and what derives from it). Nothing over a limit reaches a node's run function.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { defineNode, input, output, type ResourceLimits } from '../../server/engine/define.ts';
import { createEngine } from '../../server/engine/index.ts';
import type { ApiPrompt, EngineEvent, ValidationResult } from '../../server/engine/types.ts';
import { loopEndNode, loopStartNode } from '../../nodes/loop.ts';
import { intMathNode } from '../../nodes/utility.ts';
import { noiseInitNode } from '../../nodes/noise-init.ts';
import {
  clipCosts,
  fileNameIssues,
  modelFitIssues,
  referenceFrameIssues,
  shapeOf,
} from '../../nodes/limits.ts';
import { makeTestPaths } from '../helpers/engine-nodes.ts';

/** Node ids whose run function was called, in order (one entry per run). */
let runs: string[] = [];

/** A clip source like NoiseInit: declares its cost and its output's shape, allocates nothing. */
const clipNode = defineNode({
  name: 'LimitClip',
  displayName: 'Limit Clip',
  category: 'testing',
  description: 'A clip of frames × height × width with a declared cost.',
  inputs: {
    required: {
      frames: input.int({ default: 8, min: 1, max: 1024 }),
      width: input.int({ default: 64, min: 8, max: 4096 }),
      height: input.int({ default: 64, min: 8, max: 4096 }),
    },
  },
  outputs: [output<{ shape: readonly number[] }>('NOISE')],
  infer: ({ frames, width, height }) =>
    frames === undefined || width === undefined || height === undefined
      ? undefined
      : [{ shape: [1, 4, frames, height / 8, width / 8] }],
  cost: ({ frames, width, height }) =>
    frames === undefined || width === undefined || height === undefined
      ? []
      : clipCosts('frames', { frames, width, height, batch: 1 }),
  run({ frames, width, height }, ctx) {
    runs.push(ctx.nodeId);
    return { outputs: [{ shape: [1, 4, frames, height / 8, width / 8] }] };
  },
});

/** An output node over a clip: frames per clip count towards the prompt's total; M ≤ frames. */
const sinkNode = defineNode({
  name: 'LimitSink',
  displayName: 'Limit Sink',
  category: 'testing',
  description: 'Consumes a clip.',
  outputNode: true,
  inputs: {
    required: { clip: input.link<{ shape: readonly number[] }>('NOISE') },
    optional: { reference_frames: input.int({ default: 0, min: 0, max: 1024 }) },
  },
  outputs: [],
  validate: ({ clip, reference_frames }) => referenceFrameIssues(clip, reference_frames),
  cost({ clip }) {
    const s = shapeOf(clip);
    return s
      ? [
          {
            resource: 'totalFrames',
            input: 'clip',
            amount: s[2],
            what: `${s[2]} frames`,
            unit: 'frames',
            per: 'clip',
          },
        ]
      : [];
  },
  run(_inputs, ctx) {
    runs.push(ctx.nodeId);
    return { outputs: [], ui: {} };
  },
});

/** An output node that takes anything ('*'), for loops over plain values. */
const anySinkNode = defineNode({
  name: 'LimitAny',
  displayName: 'Limit Any',
  category: 'testing',
  description: 'Takes anything.',
  outputNode: true,
  inputs: { required: { value: input.link<unknown>('*') } },
  outputs: [],
  run(_inputs, ctx) {
    runs.push(ctx.nodeId);
    return { outputs: [], ui: {} };
  },
});

let cleanup: (() => void) | undefined;
afterEach(() => {
  cleanup?.();
  cleanup = undefined;
  runs = [];
});

function setup(limits: ResourceLimits) {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'rdflow-limits-'));
  const engine = createEngine({
    nodes: [clipNode, sinkNode, anySinkNode, intMathNode, loopStartNode, loopEndNode],
    paths: makeTestPaths(root),
    limits: { ...limits, source: 'test' },
  });
  cleanup = () => {
    engine.close();
    fs.rmSync(root, { recursive: true, force: true });
  };
  return engine;
}

async function invalid(engine: ReturnType<typeof setup>, prompt: ApiPrompt) {
  const result = await engine.validate(prompt);
  if (result.ok) throw new Error('expected the prompt to be invalid');
  return result as ValidationResult & { ok: false };
}

async function run(engine: ReturnType<typeof setup>, prompt: ApiPrompt) {
  const events: EngineEvent[] = [];
  const result = await engine.run(prompt, { promptId: 'p', onEvent: (e) => events.push(e) });
  return { result, events };
}

const PIXELS_50_FRAMES = 2048 * 2048 * 50;

describe('values computed before the run are checked at validation', () => {
  test('IntMath feeding frames 1024 and width 2048 is refused before anything runs, naming node, input, value and limit', async () => {
    const engine = setup({ clipPixels: 2 ** 28 });
    const prompt: ApiPrompt = {
      '1': { class_type: 'IntMath', inputs: { a: 512, b: 2, op: 'multiply' } },
      '2': { class_type: 'IntMath', inputs: { a: 1024, b: 2, op: 'multiply' } },
      '3': { class_type: 'LimitClip', inputs: { frames: ['1', 0], width: ['2', 0], height: 2048 } },
      '4': { class_type: 'LimitSink', inputs: { clip: ['3', 0] } },
    };
    const r = await invalid(engine, prompt);
    expect(Object.keys(r.nodeErrors)).toEqual(['3']);
    const [e] = r.nodeErrors['3'].errors;
    expect(e.type).toBe('custom_validation_failed');
    expect(e.extra_info).toMatchObject({ input_name: 'frames', received_value: 1024, linked_node: ['1', 0] });
    expect(e.message).toContain("Input 'frames' = 1024");
    expect(e.message).toContain('1024 frames × 2048×2048 × batch 1');
    expect(e.message).toContain('allowed: at most 268435456');
    expect(r.nodeErrors['3'].class_type).toBe('LimitClip');

    const { result } = await run(engine, prompt);
    expect(result.status).toBe('invalid');
    expect(runs).toEqual([]);
  });

  test('the same clip with literals is refused the same way, and a clip under the limit passes', async () => {
    const engine = setup({ clipPixels: 2 ** 28 });
    const clip = (frames: number) => ({
      '3': { class_type: 'LimitClip', inputs: { frames, width: 2048, height: 2048 } },
      '4': { class_type: 'LimitSink', inputs: { clip: ['3', 0] } },
    });
    expect((await invalid(engine, clip(1024))).nodeErrors['3'].errors[0].extra_info.input_name).toBe(
      'frames',
    );
    // 64 × 2048 × 2048 = 2^28 exactly: at the limit is allowed.
    expect(await engine.validate(clip(64))).toEqual({ ok: true, outputs: ['4'] });
    expect((await invalid(engine, clip(65))).nodeErrors['3'].errors[0].message).toContain('= 65');
  });

  test('a computed value outside the input range is reported like a literal, with the link it came from', async () => {
    const engine = setup({});
    const r = await invalid(engine, {
      '1': { class_type: 'IntMath', inputs: { a: 1000, b: 1000, op: 'add' } },
      '3': { class_type: 'LimitClip', inputs: { frames: ['1', 0], width: 64, height: 64 } },
      '4': { class_type: 'LimitSink', inputs: { clip: ['3', 0] } },
    });
    expect(r.nodeErrors['3'].errors).toMatchObject([
      {
        type: 'value_bigger_than_max',
        extra_info: { input_name: 'frames', received_value: 2000, linked_node: ['1', 0] },
      },
    ]);
    expect(r.nodeErrors['3'].errors[0].message).toContain('computed from node 1');
    expect(r.nodeErrors['3'].errors[0].message).toContain('allowed: 1 to 1024');
  });

  test('a pure node that fails on its constant inputs fails validation, naming that node', async () => {
    const engine = setup({});
    const r = await invalid(engine, {
      '1': { class_type: 'IntMath', inputs: { a: 2 ** 52, b: 4, op: 'multiply' } },
      '2': { class_type: 'LimitAny', inputs: { value: ['1', 0] } },
    });
    expect(Object.keys(r.nodeErrors)).toEqual(['1']);
    expect(r.nodeErrors['1'].errors[0].message).toMatch(/outside the safe integer range/);
  });

  test('loop iterations computed by IntMath are checked against the limit', async () => {
    const engine = setup({ loopIterations: 5000 });
    const r = await invalid(engine, {
      '1': { class_type: 'IntMath', inputs: { a: 100, b: 100, op: 'multiply' } },
      '2': { class_type: 'LoopStart', inputs: { iterations: ['1', 0] } },
      '3': { class_type: 'LimitAny', inputs: { value: ['2', 1] } },
      '4': { class_type: 'LoopEnd', inputs: { flow: ['2', 0] } },
    });
    expect(r.nodeErrors['2'].errors[0].extra_info).toMatchObject({
      input_name: 'iterations',
      received_value: 10000,
    });
    expect(r.nodeErrors['2'].errors[0].message).toMatch(
      /10000 loop iterations exceed the test limit of 5000/,
    );
  });

  test('a shape known before the run is checked: reference_frames over the frames of the clip', async () => {
    const engine = setup({});
    const r = await invalid(engine, {
      '3': { class_type: 'LimitClip', inputs: { frames: 16, width: 64, height: 64 } },
      '4': { class_type: 'LimitSink', inputs: { clip: ['3', 0], reference_frames: 20 } },
    });
    expect(r.nodeErrors['4'].errors).toMatchObject([
      {
        type: 'custom_validation_failed',
        extra_info: { input_name: 'reference_frames', received_value: 20 },
      },
    ]);
    expect(r.nodeErrors['4'].errors[0].message).toMatch(/20 exceeds the 16 frames/);
  });
});

describe('loops', () => {
  /** A clip made once, carried unchanged through `iterations` iterations, consumed in each. */
  const carried = (iterations: number): ApiPrompt => ({
    '1': { class_type: 'LimitClip', inputs: { frames: 16, width: 256, height: 256 } },
    '2': { class_type: 'LoopStart', inputs: { iterations, initial_value1: ['1', 0] } },
    '3': { class_type: 'LimitSink', inputs: { clip: ['2', 2] } },
    '4': { class_type: 'LoopEnd', inputs: { flow: ['2', 0], value1: ['2', 2] } },
  });

  test('frames per clip × the iterations around the node are the total, checked at validation', async () => {
    expect(await setup({ totalFrames: 16_000 }).validate(carried(1000))).toEqual({
      ok: true,
      outputs: ['3'],
    });
    cleanup?.();
    const r = await invalid(setup({ totalFrames: 15_999 }), carried(1000));
    expect(r.nodeErrors['3'].errors[0].message).toMatch(
      /16 frames per clip × 1000 clips = 16000 frames exceed the test limit of 15999 frames per prompt/,
    );
    expect(r.nodeErrors['3'].errors[0].extra_info.input_name).toBe('clip');
  });

  test('a value the loop carries unchanged is a constant in every iteration', async () => {
    const engine = setup({ clipPixels: PIXELS_50_FRAMES });
    const r = await invalid(engine, {
      '2': { class_type: 'LoopStart', inputs: { iterations: 3, initial_value1: 60 } },
      '3': { class_type: 'LimitClip', inputs: { frames: ['2', 2], width: 2048, height: 2048 } },
      '4': { class_type: 'LimitSink', inputs: { clip: ['3', 0] } },
      '5': { class_type: 'LoopEnd', inputs: { flow: ['2', 0], value1: ['2', 2] } },
    });
    expect(r.nodeErrors['3'].errors[0].extra_info).toMatchObject({
      input_name: 'frames',
      received_value: 60,
    });
  });

  test('a value that changes each iteration is checked right before the node runs, and the node never runs over the limit', async () => {
    const engine = setup({ clipPixels: PIXELS_50_FRAMES });
    // frames = 8 × 2^iteration, carried: 8, 16, 32, 64 — the 4th iteration is over 50 frames.
    const prompt: ApiPrompt = {
      '2': { class_type: 'LoopStart', inputs: { iterations: 5, initial_value1: 8 } },
      '3': { class_type: 'LimitClip', inputs: { frames: ['2', 2], width: 2048, height: 2048 } },
      '4': { class_type: 'LimitSink', inputs: { clip: ['3', 0] } },
      '6': { class_type: 'IntMath', inputs: { a: ['2', 2], b: 2, op: 'multiply' } },
      '5': { class_type: 'LoopEnd', inputs: { flow: ['2', 0], value1: ['6', 0] } },
    };
    expect(await engine.validate(prompt)).toEqual({ ok: true, outputs: ['4'] });
    const { result, events } = await run(engine, prompt);
    expect(result).toMatchObject({ status: 'error', nodeId: '3' });
    expect(runs.filter((id) => id === '3')).toHaveLength(3);
    const error = events.find((e) => e.type === 'execution_error');
    expect(error).toMatchObject({ nodeId: '3', nodeType: 'LimitClip' });
    const message = (error as { exceptionMessage: string }).exceptionMessage;
    expect(message).toContain("Input 'frames' = 64");
    expect(message).toContain('64 frames × 2048×2048');
    expect(message).toContain(`allowed: at most ${PIXELS_50_FRAMES}`);
  });

  test('the loop index is not a constant: a value derived from it is range-checked when it is known', async () => {
    const engine = setup({});
    const prompt: ApiPrompt = {
      '2': { class_type: 'LoopStart', inputs: { iterations: 3 } },
      '6': { class_type: 'IntMath', inputs: { a: ['2', 1], b: 600, op: 'multiply' } },
      '7': { class_type: 'IntMath', inputs: { a: ['6', 0], b: 1, op: 'add' } },
      '3': { class_type: 'LimitClip', inputs: { frames: ['7', 0], width: 64, height: 64 } },
      '4': { class_type: 'LimitSink', inputs: { clip: ['3', 0] } },
      '5': { class_type: 'LoopEnd', inputs: { flow: ['2', 0] } },
    };
    expect(await engine.validate(prompt)).toEqual({ ok: true, outputs: ['4'] });
    const { result } = await run(engine, prompt);
    expect(result).toMatchObject({ status: 'error', nodeId: '3' });
    expect((result as { message: string }).message).toMatch(
      /Input 'frames' received 1201 from node 7 \(allowed: an integer from 1 to 1024\)/,
    );
    expect(runs.filter((id) => id === '3')).toHaveLength(2);
  });

  test("a node's own checks run again before it runs when an input was unknown at validation", async () => {
    const engine = setup({});
    const prompt: ApiPrompt = {
      '1': { class_type: 'LimitClip', inputs: { frames: 16, width: 64, height: 64 } },
      '2': { class_type: 'LoopStart', inputs: { iterations: 3 } },
      '6': { class_type: 'IntMath', inputs: { a: ['2', 1], b: 10, op: 'multiply' } },
      '4': { class_type: 'LimitSink', inputs: { clip: ['1', 0], reference_frames: ['6', 0] } },
      '5': { class_type: 'LoopEnd', inputs: { flow: ['2', 0] } },
    };
    expect(await engine.validate(prompt)).toEqual({ ok: true, outputs: ['4'] });
    const { result } = await run(engine, prompt);
    expect(result).toMatchObject({ status: 'error', nodeId: '4' });
    expect((result as { message: string }).message).toMatch(
      /Input 'reference_frames': 20 exceeds the 16 frames/,
    );
    expect(runs.filter((id) => id === '4')).toHaveLength(2);
  });
});

describe('integers are integers (ComfyUI calls int(val); its oddities are not followed)', () => {
  const numbersNode = defineNode({
    name: 'LimitNumbers',
    displayName: 'Limit Numbers',
    category: 'testing',
    description: 'An INT and a FLOAT input.',
    outputNode: true,
    inputs: {
      required: {
        count: input.int({ default: 0, min: -100_000, max: 100_000 }),
        scale: input.float({ default: 0, min: -1e6, max: 1e6 }),
      },
    },
    outputs: [],
    run: () => ({ outputs: [], ui: {} }),
  });

  async function check(count: unknown, scale: unknown = 1) {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'rdflow-limits-'));
    const engine = createEngine({ nodes: [numbersNode], paths: makeTestPaths(root) });
    try {
      const prompt = { '1': { class_type: 'LimitNumbers', inputs: { count, scale } } };
      return await engine.validate(JSON.parse(JSON.stringify(prompt)) as ApiPrompt);
    } finally {
      engine.close();
      fs.rmSync(root, { recursive: true, force: true });
    }
  }
  const errorOf = (r: ValidationResult) => (r.ok ? undefined : r.nodeErrors['1'].errors[0]);

  test.each([
    ['7', 7],
    [' 7 ', 7],
    ['-3', -3],
    ['+7', 7],
  ])('INT string %j is read as %d (int() strips spaces and takes a sign)', async (value) => {
    expect(await check(value)).toEqual({ ok: true, outputs: ['1'] });
  });

  test('JSON numbers 1e3 and 7.0 are the integers 1000 and 7 however they are spelled', async () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'rdflow-limits-'));
    const engine = createEngine({ nodes: [numbersNode], paths: makeTestPaths(root) });
    cleanup = () => {
      engine.close();
      fs.rmSync(root, { recursive: true, force: true });
    };
    const prompt = JSON.parse(
      '{"1": {"class_type": "LimitNumbers", "inputs": {"count": 1e3, "scale": 1}},' +
        ' "2": {"class_type": "LimitNumbers", "inputs": {"count": 7.0, "scale": 1}}}',
    ) as ApiPrompt;
    expect(await engine.validate(prompt)).toEqual({ ok: true, outputs: ['1', '2'] });
    expect(
      await engine.validate({ '1': { class_type: 'LimitNumbers', inputs: { count: 1e6, scale: 1 } } }),
    ).toMatchObject({
      ok: false,
      nodeErrors: {
        '1': { errors: [{ type: 'value_bigger_than_max', extra_info: { received_value: 1e6 } }] },
      },
    });
  });

  test.each([
    [7.5, 'int() would truncate it to 7'],
    ['0x10', 'int() refuses it'],
    ['1e3', 'int() refuses it'],
    ['7.0', 'int() refuses it'],
    ['1_000', 'Python-only digit grouping'],
    ['', 'empty'],
    [true, 'a boolean'],
    ['٧', 'a non-ASCII digit'],
  ])('INT %j is refused (%s)', async (value, why) => {
    void why;
    expect(errorOf(await check(value))).toMatchObject({
      type: 'invalid_input_type',
      extra_info: { input_name: 'count', received_value: value },
    });
  });

  test('FLOAT takes decimal and exponent strings, not hex, inf or nan', async () => {
    expect(await check(1, '1e3')).toEqual({ ok: true, outputs: ['1'] });
    expect(await check(1, ' -2.5 ')).toEqual({ ok: true, outputs: ['1'] });
    for (const bad of ['0x10', 'inf', 'nan', '1,5']) {
      expect(errorOf(await check(1, bad)), bad).toMatchObject({
        type: 'invalid_input_type',
        extra_info: { input_name: 'scale' },
      });
    }
  });
});

describe('what nodes declare (nodes/limits.ts)', () => {
  test("a clip against the fixed dims of a UNet's ONNX sample input (the fallback without family limits)", () => {
    const sample = ['batch', 4, 8, 32, 32];
    expect(modelFitIssues('noise', [1, 4, 8, 32, 32], sample)).toEqual([]);
    expect(modelFitIssues('noise', [1, 4, 8, 40, 32], ['batch', 4, 'frames', 'h', 'w'])).toEqual([]);
    const issues = modelFitIssues('noise', [1, 4, 16, 32, 64], sample);
    expect(issues.map((i) => i.input)).toEqual(['noise', 'noise']);
    expect(issues[0].message).toMatch(/exactly 8 frames .* but the clip has 16/);
    expect(issues[1].message).toMatch(/takes 256 × 256 pixels .* but the clip is 512 × 256/);
  });

  test('file names are counted in UTF-8 bytes, leaving room for what the writer adds', () => {
    expect(fileNameIssues('x'.repeat(215))).toEqual([]);
    expect(fileNameIssues('x'.repeat(216))[0].message).toMatch(/216 bytes .* at most 215/);
    // 108 × "é" is 216 bytes, though 108 characters.
    expect(fileNameIssues('é'.repeat(108))[0].message).toMatch(/216 bytes/);
    expect(fileNameIssues(`${'d'.repeat(255)}/clip`)).toEqual([]);
    expect(fileNameIssues(`${'d'.repeat(256)}/clip`)[0].message).toMatch(/folder name .* 256 bytes/);
  });
});

describe('NoiseInit declares its clip (moved from the server unit tests of checkLimits)', () => {
  async function validate(inputs: Record<string, number>, limits: ResourceLimits) {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'rdflow-limits-'));
    const engine = createEngine({ nodes: [noiseInitNode, anySinkNode], paths: makeTestPaths(root), limits });
    try {
      return await engine.validate({
        '1': { class_type: 'NoiseInit', inputs: { seed: 0, ...inputs } },
        '2': { class_type: 'LimitAny', inputs: { value: ['1', 0] } },
      });
    } finally {
      engine.close();
      fs.rmSync(root, { recursive: true, force: true });
    }
  }
  const server = { clipPixels: 2 ** 28, loopIterations: 100_000, totalFrames: 1_000_000, source: 'server' };

  test('accepts ordinary clips and refuses clips that cannot fit, naming the node and input', async () => {
    expect(await validate({ width: 512, height: 320, frames: 16, batch_size: 1 }, server)).toEqual({
      ok: true,
      outputs: ['2'],
    });
    const r = await validate({ width: 4096, height: 4096, frames: 1024, batch_size: 64 }, server);
    if (r.ok) throw new Error('expected the clip to be refused');
    expect(r.nodeErrors['1'].class_type).toBe('NoiseInit');
    expect(r.nodeErrors['1'].errors[0].extra_info.input_name).toBe('frames');
    expect(r.nodeErrors['1'].errors[0].message).toMatch(/1024 frames × 4096×4096 × batch 64 .* GiB/);
  });
});
