// Measures the ModelScope UNet3D graph on onnxruntime CPU: attention written as MatMul/Softmax vs
// com.microsoft.MultiHeadAttention, GroupNorm forms in isolation, the time per op type, and one
// call of a text-to-video-ms-1.7b-shaped config with its FLOP estimate. Weights are seeded random
// (any key, the shape the config implies). Run: npx tsx bench/unet3d-forms.mts [section ...]
// sections: tiny mid profile groupnorm full flops (default: tiny mid groupnorm).
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { Net, type ParamOptions } from '../server/runtime/convert/net.ts';
import { ModelBuilder } from '../server/runtime/onnx/builder.ts';
import {
  buildUNet3D,
  parseUNet3DConfig,
  type UNet3DConfig,
} from '../server/runtime/families/modelscope/unet3d.ts';
import type { AttentionForm } from '../server/runtime/families/modelscope/transformer.ts';
import type { TensorInfo, WeightSource } from '../server/runtime/weights/types.ts';
import { openSafetensors } from '../server/runtime/weights/safetensors.ts';
import { sessionOptions } from '../server/runtime/sessions.ts';
import { median } from './stats.ts';

/** xorshift32 → approximately normal (sum of 4 uniforms), seeded per key. */
function randomArray(key: string, n: number, std: number, mean: number): Float32Array {
  let s = 2166136261;
  for (let i = 0; i < key.length; i++) s = Math.imul(s ^ key.charCodeAt(i), 16777619) >>> 0;
  if (s === 0) s = 1;
  const out = new Float32Array(n);
  const k = std * Math.sqrt(3); // sum of 4 U(-1,1) has variance 4/3
  for (let i = 0; i < n; i++) {
    let acc = 0;
    for (let j = 0; j < 4; j++) {
      s ^= s << 13;
      s >>>= 0;
      s ^= s >>> 17;
      s ^= s << 5;
      s >>>= 0;
      acc += s / 2147483648 - 1;
    }
    out[i] = mean + (acc / 2) * k;
  }
  return out;
}

/** A WeightSource stand-in: every key the graph asks for exists, with the shape it asks for. */
class RandomNet extends Net {
  private readonly map: Map<string, TensorInfo>;
  constructor(name: string) {
    const map = new Map<string, TensorInfo>();
    const source: WeightSource = {
      tensors: map,
      read: (key) => {
        const shape = map.get(key)?.shape ?? [];
        const n = shape.reduce((a, d) => a * d, 1);
        // norm scales near 1, biases small, matrices ~ 1/√fan_in (activations stay O(1)).
        if (/norm[^.]*\.weight$|\.conv\d\.0\.weight$/.test(key))
          return Promise.resolve(randomArray(key, n, 0.1, 1));
        if (shape.length === 1) return Promise.resolve(randomArray(key, n, 0.02, 0));
        const fanIn = n / shape[0];
        return Promise.resolve(randomArray(key, n, 1 / Math.sqrt(fanIn), 0));
      },
      close: () => Promise.resolve(),
    };
    super(source, { name });
    this.map = map;
  }
  override param(key: string, shape: readonly number[], opts?: ParamOptions): string {
    this.map.set(key, { key, dtype: 'float32', shape: [...shape], file: 'random' });
    return super.param(key, shape, opts);
  }
}

interface Opened {
  session: ort.InferenceSession;
  dispose: () => Promise<void>;
}

async function open(net: Net, opts: ort.InferenceSession.SessionOptions = {}): Promise<Opened> {
  const dir = mkdtempSync(path.join(tmpdir(), 'rdflow-bench-unet3d-'));
  const file = path.join(dir, 'model.onnx');
  await net.b.saveStreaming(file, { externalData: 'model.onnx_data' });
  // The options rdflow's runtime opens every session with (threads, no spinning, all optimisations).
  const base = sessionOptions('cpu') as unknown as ort.InferenceSession.SessionOptions;
  const session = await ort.InferenceSession.create(file, { ...base, ...opts });
  return {
    session,
    dispose: async () => {
      await session.release();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function feeds(cfg: UNet3DConfig, b: number, f: number, hw: number, seq = 77): Record<string, ort.Tensor> {
  const sampleN = b * cfg.in_channels * f * hw * hw;
  return {
    sample: new ort.Tensor('float32', randomArray('sample', sampleN, 1, 0), [b, cfg.in_channels, f, hw, hw]),
    timestep: new ort.Tensor('float32', new Float32Array(b).fill(501), [b]),
    encoder_hidden_states: new ort.Tensor(
      'float32',
      randomArray('text', b * seq * cfg.cross_attention_dim, 1, 0),
      [b, seq, cfg.cross_attention_dim],
    ),
  };
}

async function timeRuns(s: ort.InferenceSession, input: Record<string, ort.Tensor>): Promise<number> {
  const t0 = performance.now();
  await s.run(input);
  return performance.now() - t0;
}

/**
 * Multiply-add FLOPs (2 per MAC) of one call: convolutions, linear layers and the two attention
 * products; norms and element-wise ops are left out (a few percent).
 */
export function unet3dFlops(cfg: UNet3DConfig, b: number, f: number, h: number, w: number, seq = 77): number {
  const ch = cfg.block_out_channels;
  const n = ch.length;
  const N = b * f;
  const N_HEAD = cfg.attention_head_dim;
  const temb = 4 * ch[0];
  let flops = 0;
  const conv = (cin: number, cout: number, k: number, pixels: number, count: number) =>
    (flops += 2 * cin * cout * k * pixels * count);
  const lin = (i: number, o: number, tokens: number) => (flops += 2 * i * o * tokens);
  const resnet = (cin: number, cout: number, px: number) => {
    conv(cin, cout, 9, px, N);
    conv(cout, cout, 9, px, N);
    if (cin !== cout) conv(cin, cout, 1, px, N);
    lin(temb, cout, N);
  };
  const tconv = (c: number, px: number) => conv(c, c, 3, px, 4 * N); // four (3, 1, 1) convolutions
  const block = (inner: number, tokens: number, lkSelf: number, cross: boolean) => {
    // attn1, attn2, ff (GEGLU 4×: proj to 8·inner, back from 4·inner)
    lin(inner, inner, tokens * 4); // q k v out of attn1
    flops += 2 * 2 * tokens * lkSelf * inner; // QKᵀ and PV
    if (cross) {
      lin(inner, inner, tokens * 2); // q, out
      lin(cfg.cross_attention_dim, inner, b * seq * 2); // k, v once per video
      flops += 2 * 2 * tokens * seq * inner;
    } else {
      lin(inner, inner, tokens * 4);
      flops += 2 * 2 * tokens * lkSelf * inner;
    }
    lin(inner, 8 * inner, tokens);
    lin(4 * inner, inner, tokens);
  };
  const t2d = (c: number, px: number) => {
    const inner = Math.floor(c / N_HEAD) * N_HEAD;
    lin(c, inner, N * px);
    block(inner, N * px, px, true);
    lin(inner, c, N * px);
  };
  const ttemp = (c: number, inner: number, px: number) => {
    lin(c, inner, N * px);
    block(inner, N * px, f, false);
    lin(inner, c, N * px);
  };
  const sizes: [number, number][] = [[h, w]];
  for (let i = 1; i < n; i++) {
    const [ph, pw] = sizes[i - 1];
    sizes.push([Math.floor((ph - 1) / 2) + 1, Math.floor((pw - 1) / 2) + 1]);
  }
  const px = (i: number) => sizes[i][0] * sizes[i][1];
  conv(cfg.in_channels, ch[0], 9, px(0), N);
  ttemp(ch[0], 8 * N_HEAD, px(0));
  let cur = ch[0];
  const skipCh: number[] = [ch[0]];
  for (let i = 0; i < n; i++) {
    const out = ch[i];
    for (let j = 0; j < cfg.layers_per_block; j++) {
      resnet(j === 0 ? cur : out, out, px(i));
      tconv(out, px(i));
      if (cfg.down_block_types[i] === 'CrossAttnDownBlock3D') {
        t2d(out, px(i));
        ttemp(out, Math.floor(out / N_HEAD) * N_HEAD, px(i));
      }
      skipCh.push(out);
    }
    if (i < n - 1) {
      conv(out, out, 9, px(i + 1), N);
      skipCh.push(out);
    }
    cur = out;
  }
  const mid = ch[n - 1];
  resnet(mid, mid, px(n - 1));
  tconv(mid, px(n - 1));
  t2d(mid, px(n - 1));
  ttemp(mid, Math.floor(mid / N_HEAD) * N_HEAD, px(n - 1));
  resnet(mid, mid, px(n - 1));
  tconv(mid, px(n - 1));
  const rev = [...ch].reverse();
  cur = rev[0];
  for (let i = 0; i < n; i++) {
    const out = rev[i];
    const level = n - 1 - i;
    for (let j = 0; j <= cfg.layers_per_block; j++) {
      const skip = skipCh.pop() ?? 0;
      resnet((j === 0 ? cur : out) + skip, out, px(level));
      tconv(out, px(level));
      if (cfg.up_block_types[i] === 'CrossAttnUpBlock3D') {
        t2d(out, px(level));
        ttemp(out, Math.floor(out / N_HEAD) * N_HEAD, px(level));
      }
    }
    if (i < n - 1) conv(out, out, 9, px(level - 1), N);
    cur = out;
  }
  conv(ch[0], cfg.out_channels, 9, px(0), N);
  return flops;
}

const TINY_DIR = path.resolve(
  import.meta.dirname,
  '..',
  '..',
  'shared',
  'vectors',
  'models',
  'modelscope-tiny',
  'unet',
);

const MID = parseUNet3DConfig(
  {
    block_out_channels: [64, 128, 256, 256],
    attention_head_dim: 32,
    cross_attention_dim: 256,
    norm_num_groups: 32,
    layers_per_block: 2,
  },
  'mid',
);

const MS17B = parseUNet3DConfig(
  {
    block_out_channels: [320, 640, 1280, 1280],
    attention_head_dim: 64,
    cross_attention_dim: 1024,
    norm_num_groups: 32,
    layers_per_block: 2,
  },
  'text-to-video-ms-1.7b',
);

async function compareAttention(
  label: string,
  make: (form: AttentionForm) => Promise<Net>,
  input: Record<string, ort.Tensor>,
  reps: number,
): Promise<void> {
  const forms: AttentionForm[] = ['matmul', 'mha'];
  const opened: Opened[] = [];
  for (const form of forms) opened.push(await open(await make(form)));
  for (const o of opened) await o.session.run(input); // warm-up
  const times: number[][] = forms.map(() => []);
  for (let r = 0; r < reps; r++) {
    for (let i = 0; i < forms.length; i++) times[i].push(await timeRuns(opened[i].session, input));
  }
  for (let i = 0; i < forms.length; i++) {
    const t = times[i];
    console.log(
      `${label} attention=${forms[i]}: median ${median(t).toFixed(1)} ms (min ${Math.min(...t).toFixed(1)}, max ${Math.max(...t).toFixed(1)}, n ${t.length})`,
    );
  }
  for (const o of opened) await o.dispose();
}

async function tiny(): Promise<void> {
  const cfg = parseUNet3DConfig(JSON.parse(readFileSync(path.join(TINY_DIR, 'config.json'), 'utf8')), 'tiny');
  const make = async (attention: AttentionForm) => {
    const src = await openSafetensors(path.join(TINY_DIR, 'diffusion_pytorch_model.safetensors'));
    const net = new Net(src, { name: 'unet' });
    buildUNet3D(net, cfg, { attention });
    sources.push(src);
    return net;
  };
  const sources: WeightSource[] = [];
  await compareAttention('tiny [2,4,8,16,16]', make, feeds(cfg, 2, 8, 16), 15);
  for (const s of sources) await s.close();
}

async function mid(): Promise<void> {
  for (const f of (process.env.MID_FRAMES ?? '8,16').split(',').map(Number)) {
    const make = (attention: AttentionForm) => {
      const net = new RandomNet('unet');
      buildUNet3D(net, MID, { attention });
      return Promise.resolve(net);
    };
    const gf = unet3dFlops(MID, 2, f, 32, 32) / 1e9;
    await compareAttention(
      `mid [2,4,${f},32,32] (${gf.toFixed(1)} GFLOP)`,
      make,
      feeds(MID, 2, f, 32),
      Number(process.env.REPS ?? 7),
    );
  }
}

/** Time per op type from onnxruntime's profiler, for the mid config. */
async function profile(): Promise<void> {
  for (const attention of ['matmul', 'mha'] as const) {
    const net = new RandomNet('unet');
    buildUNet3D(net, MID, { attention });
    const dir = mkdtempSync(path.join(tmpdir(), 'rdflow-prof-'));
    const o = await open(net, { enableProfiling: true, profileFilePrefix: path.join(dir, 'p') });
    const input = feeds(MID, 2, 8, 32);
    for (let r = 0; r < 4; r++) await o.session.run(input);
    await o.dispose();
    const file = readdirSync(dir).find((n) => n.endsWith('.json'));
    if (file === undefined) throw new Error('no profile written');
    const events = JSON.parse(readFileSync(path.join(dir, file), 'utf8')) as {
      cat: string;
      name: string;
      dur: number;
      args?: { op_name?: string };
    }[];
    const byOp = new Map<string, number>();
    let total = 0;
    for (const e of events) {
      if (e.cat !== 'Node' || !e.name.endsWith('_kernel_time')) continue;
      const op = e.args?.op_name ?? '?';
      byOp.set(op, (byOp.get(op) ?? 0) + e.dur);
      total += e.dur;
    }
    console.log(`profile mid [2,4,8,32,32] attention=${attention} (4 runs, share of kernel time):`);
    for (const [op, us] of [...byOp].sort((a, b) => b[1] - a[1]).slice(0, 14)) {
      console.log(`  ${op.padEnd(28)} ${((100 * us) / total).toFixed(1)}%  ${(us / 4000).toFixed(1)} ms/run`);
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

/** One GroupNorm (affine) at a UNet shape, in each candidate form; repetitions interleaved. */
async function groupnorm(): Promise<void> {
  const shapes: { label: string; dims: number[] }[] = [
    { label: 'spatial [32,320,32,32]', dims: [32, 320, 32, 32] },
    { label: 'temporal [2,320,16,1024]', dims: [2, 320, 16, 1024] },
    { label: 'spatial [16,64,32,32]', dims: [16, 64, 32, 32] },
  ];
  const G = 32;
  const eps = 1e-5;
  const forms = ['instancenorm', 'reducemean', 'groupnormalization-21', 'com.microsoft.GroupNorm'] as const;
  for (const { label, dims } of shapes) {
    const C = dims[1];
    const n = dims.reduce((a, d) => a * d, 1);
    const x = new ort.Tensor('float32', randomArray('x', n, 1, 0.3), dims);
    const lines: string[] = [];
    const live: { form: string; s: ort.InferenceSession; t: number[]; out?: Float32Array }[] = [];
    for (const form of forms) {
      const b = new ModelBuilder({ name: 'gn', opset: form === 'groupnormalization-21' ? 21 : 17 });
      b.input(
        'x',
        'float32',
        dims.map((_, i) => `d${i}`),
      );
      let consts = 0;
      const i64 = (v: number[]) => b.initializer(`c${consts++}`, BigInt64Array.from(v, BigInt), [v.length]);
      const affine = (t: string) => {
        const gamma = b.initializer('gamma', randomArray('g', C, 0.1, 1), [C, 1, 1]);
        const beta = b.initializer('beta', randomArray('b', C, 0.1, 0), [C, 1, 1]);
        return b.op('Add', [b.op('Mul', [t, gamma]), beta]);
      };
      let y: string;
      if (form === 'instancenorm') {
        const g = b.op('Reshape', ['x', i64([0, G, -1])]);
        const ones = b.initializer('ones', new Float32Array(G).fill(1), [G]);
        const zeros = b.initializer('zeros', new Float32Array(G), [G]);
        const nrm = b.op('InstanceNormalization', [g, ones, zeros], { epsilon: eps });
        y = affine(b.op('Reshape', [nrm, b.op('Shape', ['x'])]));
      } else if (form === 'reducemean') {
        const g = b.op('Reshape', ['x', i64([0, G, -1])]);
        const mean = b.op('ReduceMean', [g], { axes: [2], keepdims: 1 });
        const d = b.op('Sub', [g, mean]);
        const v = b.op('ReduceMean', [b.op('Mul', [d, d])], { axes: [2], keepdims: 1 });
        const epsT = b.initializer('eps', Float32Array.of(eps), []);
        const nrm = b.op('Div', [d, b.op('Sqrt', [b.op('Add', [v, epsT])])]);
        y = affine(b.op('Reshape', [nrm, b.op('Shape', ['x'])]));
      } else if (form === 'groupnormalization-21') {
        const flat = b.op('Reshape', ['x', i64([0, 0, -1])]);
        const g1 = b.initializer('g1', randomArray('g', C, 0.1, 1), [C]);
        const b1 = b.initializer('b1', randomArray('b', C, 0.1, 0), [C]);
        const nrm = b.op('GroupNormalization', [flat, g1, b1], { epsilon: eps, num_groups: G });
        y = b.op('Reshape', [nrm, b.op('Shape', ['x'])]);
      } else {
        // contrib GroupNorm takes NHWC [N, H, W, C] with gamma/beta [C]
        const flat = b.op('Reshape', ['x', i64([0, 0, -1, 1])]);
        const nhwc = b.op('Transpose', [flat], { perm: [0, 2, 3, 1] });
        const g1 = b.initializer('g1', randomArray('g', C, 0.1, 1), [C]);
        const b1 = b.initializer('b1', randomArray('b', C, 0.1, 0), [C]);
        const nrm = b.op(
          'GroupNorm',
          [nhwc, g1, b1],
          { epsilon: eps, groups: G, activation: 0 },
          { domain: 'com.microsoft' },
        );
        const nchw = b.op('Transpose', [nrm], { perm: [0, 3, 1, 2] });
        y = b.op('Reshape', [nchw, b.op('Shape', ['x'])]);
      }
      b.node('Identity', [y], ['y']);
      b.output('y', 'float32', null);
      try {
        const s = await ort.InferenceSession.create(b.toBytes(), { logSeverityLevel: 3 });
        await s.run({ x });
        live.push({ form, s, t: [] });
      } catch (e) {
        lines.push(`${form}: does not run (${(e as Error).message.split('\n')[0].slice(0, 100)})`);
      }
    }
    for (let r = 0; r < 15; r++) {
      for (const l of live) {
        const t0 = performance.now();
        const o = await l.s.run({ x });
        l.t.push(performance.now() - t0);
        l.out = o.y.data as Float32Array;
      }
    }
    const ref = live[0].out;
    for (const l of live) {
      let diff = 0;
      if (ref !== undefined && l.out !== undefined)
        for (let i = 0; i < n; i++) diff = Math.max(diff, Math.abs(l.out[i] - ref[i]));
      lines.unshift(
        `${l.form}: median ${median(l.t).toFixed(2)} ms, max diff vs instancenorm ${diff.toExponential(1)}`,
      );
      await l.s.release();
    }
    console.log(`GroupNorm ${label}, 32 groups:\n  ${lines.join('\n  ')}`);
  }
}

/**
 * Calls of a text-to-video-ms-1.7b-shaped UNet (random weights, default attention form) at the
 * shapes in SHAPES ("batch x frames x size", comma-separated; default 1x16x32).
 */
async function full(): Promise<void> {
  const shapes = (process.env.SHAPES ?? '1x16x32').split(',').map((t) => t.split('x').map(Number));
  const net = new RandomNet('unet');
  const attention = process.env.ATTN as AttentionForm | undefined;
  buildUNet3D(net, MS17B, attention === undefined ? {} : { attention });
  console.log(`ms-1.7b-shaped: ${(net.b.lazyBytes() / 1e9).toFixed(2)} GB float32 weights`);
  const t0 = performance.now();
  const o = await open(net);
  console.log(`  written and opened in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  for (const [batch, frames, size] of shapes) {
    const gf = unet3dFlops(MS17B, batch, frames, size, size) / 1e9;
    const input = feeds(MS17B, batch, frames, size);
    const times: number[] = [];
    for (let r = 0; r < Number(process.env.REPS ?? 2); r++) times.push(await timeRuns(o.session, input));
    const m = median(times) / 1000;
    console.log(
      `  [${batch},4,${frames},${size},${size}] ≈ ${gf.toFixed(0)} GFLOP: ${times.map((t) => (t / 1000).toFixed(1)).join(', ')} s; median ${m.toFixed(1)} s, ${(gf / m).toFixed(0)} GFLOP/s`,
    );
  }
  await o.dispose();
}

/** The FLOP estimate at a few shapes (no model built). */
function flops(): Promise<void> {
  const rows: [string, UNet3DConfig, number, number, number][] = [
    ['mid', MID, 2, 8, 32],
    ['mid', MID, 2, 16, 32],
    ['ms-1.7b', MS17B, 1, 16, 32],
    ['ms-1.7b', MS17B, 2, 16, 32],
    ['ms-1.7b', MS17B, 1, 8, 16],
    ['ms-1.7b', MS17B, 1, 4, 16],
  ];
  for (const [label, cfg, b, f, s] of rows) {
    console.log(`${label} [${b},4,${f},${s},${s}]: ${(unet3dFlops(cfg, b, f, s, s) / 1e9).toFixed(1)} GFLOP`);
  }
  return Promise.resolve();
}

const sections = process.argv.slice(2);
const run = sections.length > 0 ? sections : ['tiny', 'mid', 'groupnorm'];
const table: Record<string, () => Promise<void>> = { tiny, mid, profile, groupnorm, full, flops };
for (const s of run) {
  const fn = table[s];
  if (fn === undefined) throw new Error(`unknown section ${s} (tiny, mid, profile, groupnorm, full, flops)`);
  await fn();
}
