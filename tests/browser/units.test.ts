// The editor's pure modules, without a browser: the shared canvas → API converter reads the same
// widgets from /object_info as from the node declarations (same prompt for every shipped workflow
// and for the canvas rules: bypass, mute, reroute, seed control), and the run state, undo history,
// widget rules and preview frames behave as specified.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parsePreviewFrame } from '../../client/src/api.ts';
import { nextSeed, normalizeNumber, orderedInputs, readInput } from '../../client/src/node-info.ts';
import { searchNodeTypes } from '../../client/src/node-search.ts';
import { formatDuration, RunState } from '../../client/src/run-state.ts';
import type { ObjectInfo, ServerMessage } from '../../client/src/types.ts';
import { UndoHistory } from '../../client/src/undo.ts';
import { classifyWorkflow } from '../../client/src/workflows.ts';
import { allNodes } from '../../nodes/index.ts';
import {
  canvasToApi,
  createRegistry,
  objectInfoLookup,
  toApiPrompt,
  type CanvasWorkflow,
} from '../../server/engine/index.ts';

const repoRoot = path.resolve(import.meta.dirname, '..', '..');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'rdflow-client-'));
const env = {
  paths: {
    output: path.join(tmp, 'output'),
    input: path.join(tmp, 'input'),
    temp: path.join(tmp, 'temp'),
    models: path.join(tmp, 'models'),
  },
};
const objectInfo = createRegistry(allNodes).objectInfo(env) as unknown as ObjectInfo;
/** What the editor converts with: the widgets as /object_info describes them. */
const editorWidgets = objectInfoLookup(objectInfo);

const canvasFiles = fs
  .readdirSync(path.join(repoRoot, 'workflows'))
  .filter((f) => f.endsWith('.canvas.json'));

describe('canvas → API conversion', () => {
  it.each(canvasFiles)(
    '%s gives the same prompt with widgets from /object_info as from the node declarations',
    (file) => {
      const json = JSON.parse(fs.readFileSync(path.join(repoRoot, 'workflows', file), 'utf8')) as unknown;
      const prompt = canvasToApi(json, editorWidgets);
      expect(Object.keys(prompt).length).toBeGreaterThan(0);
      expect(prompt).toEqual(toApiPrompt(json, allNodes));
    },
  );

  // Noise → FNR (bypassed) → PNS, a muted sampler, a reroute between noise and a second FNR.
  const workflow: CanvasWorkflow = {
    version: 0.4,
    nodes: [
      {
        id: 1,
        type: 'NoiseInit',
        mode: 0,
        title: 'Noise',
        inputs: [],
        widgets_values: [7, 'randomize', 8, 64, 64, 1],
      },
      { id: 2, type: 'FNRReverse', mode: 4, inputs: [{ name: 'noise', type: 'NOISE', link: 1 }] },
      {
        id: 3,
        type: 'PNSNoise',
        mode: 0,
        inputs: [{ name: 'noise', type: 'NOISE', link: 2 }],
        widgets_values: [4, 4, 11, 'fixed', 1],
      },
      { id: 4, type: 'Reroute', inputs: [{ name: '', type: '*', link: 3 }] },
      { id: 5, type: 'FNRReverse', mode: 0, inputs: [{ name: 'noise', type: 'NOISE', link: 4 }] },
      { id: 6, type: 'IntMath', mode: 2, inputs: [], widgets_values: [1, 2, 'add'] },
      { id: 7, type: 'Note', inputs: [], widgets_values: ['a comment'] },
    ],
    links: [
      [1, 1, 0, 2, 0, 'NOISE'],
      [2, 2, 0, 3, 0, 'NOISE'],
      [3, 1, 0, 4, 0, 'NOISE'],
      [4, 4, 0, 5, 0, 'NOISE'],
    ],
  };
  for (const node of workflow.nodes) {
    if (node.type === 'FNRReverse' || node.type === 'PNSNoise') {
      (node as { outputs?: unknown[] }).outputs = [{ name: 'NOISE', type: 'NOISE' }];
    }
  }

  it('follows reroutes, passes bypassed nodes through, drops muted nodes and notes, skips seed controls', () => {
    const prompt = canvasToApi(workflow, editorWidgets);
    expect(Object.keys(prompt).sort()).toEqual(['1', '3', '5']);
    expect(prompt['1'].inputs).toEqual({ seed: 7, frames: 8, width: 64, height: 64, batch_size: 1 });
    expect(prompt['1']._meta?.title).toBe('Noise');
    // PNS reads the noise straight from NoiseInit: the bypassed FNR passed its NOISE input through.
    expect(prompt['3'].inputs.noise).toEqual(['1', 0]);
    expect(prompt['3'].inputs.seed).toBe(11);
    expect(prompt['5'].inputs.noise).toEqual(['1', 0]);
    expect(prompt).toEqual(toApiPrompt(workflow, allNodes));
  });

  it('tells canvas format from API format', () => {
    expect(classifyWorkflow({ nodes: [], links: [] }).kind).toBe('canvas');
    expect(classifyWorkflow({ '1': { class_type: 'IntMath', inputs: {} } }).kind).toBe('api');
    expect(classifyWorkflow({ prompt: { '1': { class_type: 'IntMath', inputs: {} } } }).kind).toBe('api');
    expect(() => classifyWorkflow({ hello: 1 })).toThrow(/Not a workflow/);
  });
});

describe('run state from WebSocket messages', () => {
  const run = (messages: ServerMessage[]): RunState => {
    const state = new RunState();
    for (const m of messages) state.apply(m);
    return state;
  };

  it('follows the executing node, its steps and the clip counter, then ends', () => {
    const state = run([
      { type: 'execution_start', data: { prompt_id: 'p' } },
      { type: 'execution_cached', data: { prompt_id: 'p', nodes: ['1', '2'] } },
      { type: 'executing', data: { prompt_id: 'p', node: '6' } },
      {
        type: 'progress',
        data: { prompt_id: 'p', node: '6', value: 3, max: 10, iteration: 1, iterations: 6 },
      },
    ]);
    expect(state.phase).toBe('running');
    expect(state.executing).toBe('6');
    expect(state.progress).toEqual({ node: '6', value: 3, max: 10 });
    expect(state.clipLabel()).toBe('clip 2 of 6');
    expect([...state.cached]).toEqual(['1', '2']);
    state.apply({ type: 'iteration', data: { prompt_id: 'p', node: '5', iteration: 5, iterations: 6 } });
    expect(state.clipLabel()).toBe('clip 6 of 6');
    state.apply({ type: 'executing', data: { prompt_id: 'p', node: null } });
    expect(state.phase).toBe('success');
    expect(state.executing).toBeUndefined();
  });

  it('names the failed node and keeps it failed after the final executing message', () => {
    const state = run([
      { type: 'execution_start', data: { prompt_id: 'p' } },
      { type: 'executing', data: { prompt_id: 'p', node: '7' } },
      {
        type: 'execution_error',
        data: { prompt_id: 'p', node_id: '7', node_type: 'VAEDecode', exception_message: 'bad latent' },
      },
      { type: 'executing', data: { prompt_id: 'p', node: null } },
    ]);
    expect(state.phase).toBe('error');
    expect(state.failure).toEqual({
      promptId: 'p',
      nodeId: '7',
      nodeType: 'VAEDecode',
      message: 'bad latent',
    });
  });

  it('keeps the outcome of a prompt that failed before its POST answered', () => {
    const state = run([
      { type: 'execution_start', data: { prompt_id: 'p' } },
      {
        type: 'execution_error',
        data: { prompt_id: 'p', node_id: '6', node_type: 'X', exception_message: 'm' },
      },
    ]);
    state.begin('p');
    expect(state.phase).toBe('error');
    expect(state.failure?.nodeId).toBe('6');
    state.begin('q');
    expect(state.phase).toBe('queued');
    expect(state.failure).toBeUndefined();
  });

  it('keeps validation errors per node until the next prompt starts', () => {
    const state = new RunState();
    state.reject({
      '6': {
        errors: [
          {
            type: 'required_input_missing',
            message: 'missing',
            details: 'positive',
            extra_info: { input_name: 'positive' },
          },
        ],
        dependent_outputs: ['9'],
        class_type: 'DDIMSampler',
      },
    });
    expect(state.phase).toBe('invalid');
    expect(state.errorsOf('6')[0].extra_info?.input_name).toBe('positive');
    state.apply({ type: 'execution_start', data: { prompt_id: 'q' } });
    expect(state.errorsOf('6')).toEqual([]);
  });

  it('ignores message types it does not know', () => {
    const state = new RunState();
    expect(state.apply({ type: 'crystools.monitor', data: {} } as unknown as ServerMessage)).toBe(false);
  });
});

describe('undo history', () => {
  it('undoes and redoes recorded states, and records nothing for an unchanged graph', () => {
    const h = new UndoHistory();
    h.reset('a');
    expect(h.record('a')).toBe(false);
    expect(h.record('b')).toBe(true);
    h.record('c');
    expect(h.undo()).toBe('b');
    expect(h.undo()).toBe('a');
    expect(h.undo()).toBeUndefined();
    expect(h.redo()).toBe('b');
    h.record('d');
    expect(h.redo()).toBeUndefined();
    expect(h.undo()).toBe('b');
  });
});

describe('widget rules from /object_info', () => {
  const sampler = orderedInputs(objectInfo.DDIMSampler);

  it('lists inputs in input_order, widgets with their kinds', () => {
    expect(sampler.map((e) => e.name)).toEqual([
      ...objectInfo.DDIMSampler.input_order!.required!,
      ...objectInfo.DDIMSampler.input_order!.optional!,
    ]);
    expect(sampler.find((e) => e.name === 'steps')?.widget).toBe('INT');
    expect(sampler.find((e) => e.name === 'noise')?.widget).toBeUndefined();
  });

  it('keeps typed numbers on the step grid and inside the range', () => {
    const width = readInput('width', ['INT', { default: 256, min: 8, max: 4096, step: 8 }], true);
    expect(normalizeNumber(width, 250)).toBe(248);
    expect(normalizeNumber(width, 1)).toBe(8);
    expect(normalizeNumber(width, 99999)).toBe(4096);
    const cfg = readInput('cfg', ['FLOAT', { default: 10, min: 0, max: 100, step: 0.1, round: 0.01 }], true);
    expect(normalizeNumber(cfg, 7.456)).toBe(7.46);
  });

  it('moves a seed after queueing as its control says', () => {
    const seed = readInput(
      'seed',
      ['INT', { default: 0, min: 0, max: 100, control_after_generate: true }],
      true,
    );
    expect(nextSeed(seed, 5, 'fixed', Math.random)).toBe(5);
    expect(nextSeed(seed, 5, 'increment', Math.random)).toBe(6);
    expect(nextSeed(seed, 0, 'decrement', Math.random)).toBe(0);
    expect(nextSeed(seed, 5, 'randomize', () => 0.999999)).toBe(100);
    expect(nextSeed(seed, 5, 'randomize', () => 0)).toBe(0);
  });
});

describe('binary preview frames', () => {
  const frame = (type: number, format: number, bytes: number[]): ArrayBuffer => {
    const buf = new ArrayBuffer(8 + bytes.length);
    const view = new DataView(buf);
    view.setUint32(0, type);
    view.setUint32(4, format);
    new Uint8Array(buf, 8).set(bytes);
    return buf;
  };

  it('reads the 8-byte header and keeps the image bytes', async () => {
    const png = parsePreviewFrame(frame(1, 2, [0x89, 0x50, 0x4e, 0x47]));
    expect(png?.mime).toBe('image/png');
    expect([...new Uint8Array(await png!.blob.arrayBuffer())]).toEqual([0x89, 0x50, 0x4e, 0x47]);
    expect(parsePreviewFrame(frame(1, 1, [0xff, 0xd8]))?.mime).toBe('image/jpeg');
  });

  it('ignores frames that are not preview images', () => {
    expect(parsePreviewFrame(frame(2, 2, [1]))).toBeUndefined();
    expect(parsePreviewFrame(frame(1, 9, [1]))).toBeUndefined();
    expect(parsePreviewFrame(new ArrayBuffer(3))).toBeUndefined();
  });
});

describe('node search', () => {
  const info = createRegistry(allNodes).objectInfo(env) as unknown as ObjectInfo;
  it('finds node types by name, title, category and description words, name matches first', () => {
    expect(searchNodeTypes(info, 'textencode')[0]).toBe('TextEncode');
    expect(searchNodeTypes(info, 'Text Encode')[0]).toBe('TextEncode');
    expect(searchNodeTypes(info, 'conditioning')).toContain('TextEncode');
    expect(searchNodeTypes(info, 'encodes prompt')).toEqual(['TextEncode']);
    expect(searchNodeTypes(info, 'video write')[0]).toBe('VideoWrite');
    expect(searchNodeTypes(info, 'no such words anywhere')).toEqual([]);
    // Every word must match somewhere.
    expect(searchNodeTypes(info, 'conditioning sampler-nonsense')).toEqual([]);
  });
});

describe('run state across reloads and other clients', () => {
  it('takes the running prompt from the queue, once, and never revives an ended one', () => {
    const state = new RunState();
    state.apply({ type: 'execution_start', data: { prompt_id: 'a' } });
    state.apply({ type: 'execution_cached', data: { prompt_id: 'a', nodes: ['1', '2'] } });
    state.apply({ type: 'executing', data: { prompt_id: 'a', node: null } });
    expect(state.cached.size).toBe(2);
    // A late answer of GET /queue that still lists 'a' changes nothing.
    expect(state.noticeRunning('a')).toBe(false);
    // Another client's prompt starts: the badges of ours clear.
    expect(state.noticeRunning('b')).toBe(true);
    expect(state.phase).toBe('running');
    expect(state.cached.size).toBe(0);
    expect(state.noticeRunning('b')).toBe(false);
    // Its steps, if they reach us (a reload mid-run: same client id), name the node and clip.
    state.apply({
      type: 'progress',
      data: { prompt_id: 'b', node: '6', value: 3, max: 10, iteration: 4, iterations: 9 },
    });
    expect(state.executing).toBe('6');
    expect(state.clipLabel()).toBe('clip 5 of 9');
    // It ends while its messages go elsewhere: the queue says nothing runs.
    expect(state.noticeRunning(undefined)).toBe(true);
    expect(state.phase).toBe('idle');
  });

  it('a late GET /queue answer between the outcome and `executing: null` keeps the badges', () => {
    // The server lists a prompt as running until `executing: null`, after its outcome message.
    for (const outcome of [
      { type: 'execution_success', data: { prompt_id: 'a' } },
      { type: 'execution_interrupted', data: { prompt_id: 'a' } },
      {
        type: 'execution_error',
        data: { prompt_id: 'a', node_id: '6', node_type: 'T', exception_message: 'x' },
      },
    ] as ServerMessage[]) {
      const state = new RunState();
      state.apply({ type: 'execution_start', data: { prompt_id: 'a' } });
      state.apply({ type: 'execution_cached', data: { prompt_id: 'a', nodes: ['1', '2'] } });
      state.apply(outcome);
      const phase = state.phase;
      expect(state.noticeRunning('a')).toBe(false);
      state.apply({ type: 'executing', data: { prompt_id: 'a', node: null } });
      expect(state.cached.size).toBe(2);
      expect(state.phase).toBe(phase);
    }
  });

  it('the queue cannot stop a run this page follows by its own messages', () => {
    const state = new RunState();
    state.apply({ type: 'execution_start', data: { prompt_id: 'a' } });
    expect(state.noticeRunning(undefined)).toBe(false);
    expect(state.phase).toBe('running');
  });

  it('estimates the time left from the pace of clips and steps', () => {
    let now = 0;
    const state = new RunState(() => now);
    state.apply({ type: 'execution_start', data: { prompt_id: 'a' } });
    const step = (iteration: number, value: number) =>
      state.apply({
        type: 'progress',
        data: { prompt_id: 'a', node: '6', value, max: 10, iteration, iterations: 10 },
      });
    step(0, 0);
    expect(state.etaLabel()).toBeUndefined();
    // One clip in 20 s: nine left, 180 s.
    now = 20_000;
    step(1, 0);
    expect(state.etaSeconds()).toBeCloseTo(180);
    expect(state.etaLabel()).toBe('ETA 3m00s');
    // Half of the next clip 10 s later: 8.5 clips left at 20 s each.
    now = 30_000;
    step(1, 5);
    expect(state.etaSeconds()).toBeCloseTo(170);
    // clip_written moves on to the next clip.
    state.apply({ type: 'clip_written', data: { prompt_id: 'a', node: '8', iteration: 1, iterations: 10 } });
    expect(state.clipLabel()).toBe('clip 3 of 10');
    state.apply({ type: 'executing', data: { prompt_id: 'a', node: null } });
    expect(state.etaLabel()).toBeUndefined();
    expect([formatDuration(45), formatDuration(185), formatDuration(3720)]).toEqual([
      '45s',
      '3m05s',
      '1h02m',
    ]);
  });
});
