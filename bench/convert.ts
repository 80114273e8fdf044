// Benchmarks 8 and 9, real checkpoints: (8) a converted UNet3D's call time and achieved GFLOP/s
// beside the GFLOP/s onnxruntime reaches on a plain MatMul on this machine (the practical limit);
// (9) `rdflow convert` of a full-size text-to-video-ms-1.7b-shaped checkpoint (random float16
// weights written by scripts/random-checkpoint.ts): time and peak RSS, which must stay bounded by
// the largest tensor plus a constant, not by the model.
import { readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { Net } from '../server/runtime/convert/net.ts';
import { buildUNet3D, parseUNet3DConfig } from '../server/runtime/families/modelscope/unet3d.ts';
import { ModelBuilder } from '../server/runtime/onnx/builder.ts';
import { openComponentWeights } from '../server/runtime/weights/index.ts';
import { graphKeys, makeRandomCheckpoint, MID_UNET, randomSource } from '../scripts/random-checkpoint.ts';
import type { BenchEnv } from './config.ts';
import { RDFLOW_BIN, runNode } from './proc.ts';
import type { Section } from './report.ts';
import { fmtSummary, mib, summarize, type Summary } from './stats.ts';

/** UNet input of the throughput row: classifier-free guidance batch 2, 8 frames, 256×256. */
const UNET_SHAPE = [2, 4, 8, 32, 32];
const MATMUL_N = 1024;

async function time(f: () => Promise<unknown>, reps: number): Promise<number[]> {
  await f(); // untimed: first-run allocations
  const out: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t = performance.now();
    await f();
    out.push(performance.now() - t);
  }
  return out;
}

/** onnxruntime's CPU MatMul on [N,N]×[N,N] float32: GFLOP/s per run. */
async function matmulGflops(reps: number): Promise<number[]> {
  const b = new ModelBuilder({ name: 'matmul' });
  b.input('a', 'float32', [MATMUL_N, MATMUL_N]);
  b.input('b', 'float32', [MATMUL_N, MATMUL_N]);
  b.node('MatMul', ['a', 'b'], ['y']);
  b.output('y', 'float32', null);
  const s = await ort.InferenceSession.create(b.toBytes());
  const x = new Float32Array(MATMUL_N * MATMUL_N).map((_, i) => Math.sin(i));
  const feeds = {
    a: new ort.Tensor('float32', x, [MATMUL_N, MATMUL_N]),
    b: new ort.Tensor('float32', x, [MATMUL_N, MATMUL_N]),
  };
  const ms = await time(() => s.run(feeds), Math.max(reps, 10));
  await s.release();
  return ms.map((t) => (2 * MATMUL_N ** 3) / (t / 1000) / 1e9);
}

interface ProfileEvent {
  cat?: string;
  name?: string;
  args?: {
    op_name?: string;
    input_type_shape?: Record<string, number[]>[];
    output_type_shape?: Record<string, number[]>[];
  };
}

/** FLOPs of MatMul/Gemm/Conv kernels in one profiled run (element-wise work is not counted). */
export function profileFlops(
  events: readonly ProfileEvent[],
  kernels: ReadonlyMap<string, number[]>,
): number {
  let flops = 0;
  const shape = (l: Record<string, number[]>[] | undefined, i: number) =>
    l?.[i] ? Object.values(l[i])[0] : [];
  for (const e of events) {
    if (e.cat !== 'Node' || !e.name?.endsWith('_kernel_time')) continue;
    const op = e.args?.op_name ?? '';
    const out = shape(e.args?.output_type_shape, 0);
    const inp = shape(e.args?.input_type_shape, 0);
    const outN = out.reduce((a, d) => a * d, 1);
    if (op === 'MatMul' || op === 'FusedMatMul' || op === 'Gemm') flops += 2 * outN * inp[inp.length - 1];
    else if (op === 'Conv' || op === 'FusedConv') {
      const base = e.name.slice(0, -'_kernel_time'.length);
      const kernel = kernels.get(base) ?? kernels.get(base.replace(/_fused.*$/i, '')) ?? [1];
      flops += 2 * outN * inp[1] * kernel.reduce((a, d) => a * d, 1);
    }
  }
  return flops;
}

export interface UNetThroughput {
  params: number;
  callMs: Summary;
  gflop: number;
  gflops: Summary;
  matmul: Summary;
}

export async function unetThroughput(env: BenchEnv, log: (m: string) => void): Promise<UNetThroughput> {
  const cfg = parseUNet3DConfig(MID_UNET, 'unet/config.json');
  const keys = graphKeys((n) => buildUNet3D(n, cfg));
  const net = new Net(randomSource(keys), { name: 'unet' });
  buildUNet3D(net, cfg);
  const file = path.join(env.tmp, 'unet-mid', 'model.onnx');
  await net.b.saveStreaming(file, { externalData: 'model.onnx_data' });
  const kernels = new Map(
    net.b
      .nodeList()
      .filter((n) => n.opType === 'Conv')
      .map((n) => [n.name, n.attrs.kernel_shape as number[]]),
  );
  const n = UNET_SHAPE.reduce((a, d) => a * d, 1);
  const feeds = {
    sample: new ort.Tensor(
      'float32',
      new Float32Array(n).map((_, i) => Math.sin(i)),
      UNET_SHAPE,
    ),
    timestep: new ort.Tensor('float32', new Float32Array([981, 981]), [2]),
    encoder_hidden_states: new ort.Tensor(
      'float32',
      new Float32Array(2 * 77 * 1024).fill(0.1),
      [2, 77, 1024],
    ),
  };
  // FLOPs from one profiled call (shapes of every MatMul and Conv as onnxruntime ran them).
  const prefix = path.join(env.tmp, 'unet-profile');
  const profiled = await ort.InferenceSession.create(file, {
    enableProfiling: true,
    profileFilePrefix: prefix,
  });
  await profiled.run(feeds);
  (profiled as unknown as { endProfiling(): void }).endProfiling();
  await profiled.release();
  const { readdirSync } = await import('node:fs');
  const prof = readdirSync(env.tmp).find((f) => f.startsWith('unet-profile'));
  const events = JSON.parse(readFileSync(path.join(env.tmp, prof!), 'utf8')) as ProfileEvent[];
  const flops = profileFlops(events, kernels);
  const session = await ort.InferenceSession.create(file);
  const ms = await time(() => session.run(feeds), Math.min(env.reps, 3));
  await session.release();
  rmSync(path.dirname(file), { recursive: true, force: true });
  const matmul = await matmulGflops(env.reps);
  log(`  unet mid: ${summarize(ms).median.toFixed(0)} ms/call, ${(flops / 1e9).toFixed(0)} GFLOP`);
  return {
    params: net.parameters(),
    callMs: summarize(ms),
    gflop: flops / 1e9,
    gflops: summarize(ms.map((t) => flops / (t / 1000) / 1e9)),
    matmul: summarize(matmul),
  };
}

export interface ConvertBench {
  writeMs: number;
  convertMs: number;
  peakRss: number;
  bytes: number;
  largestTensor: number;
  unet: UNetThroughput;
}

export async function benchConvert(env: BenchEnv, log: (m: string) => void): Promise<ConvertBench> {
  const unet = await unetThroughput(env, log);
  const src = path.join(env.tmp, 'ms17');
  const dest = path.join(env.tmp, 'ms17-onnx');
  let t = performance.now();
  await makeRandomCheckpoint(src, 'full');
  const writeMs = performance.now() - t;
  let largest = 0;
  for (const part of ['text_encoder', 'unet', 'vae']) {
    const w = await openComponentWeights(path.join(src, part));
    for (const info of w.tensors.values())
      largest = Math.max(
        largest,
        info.shape.reduce((a, d) => a * d, 4),
      );
    await w.close();
  }
  t = performance.now();
  const run = await runNode([RDFLOW_BIN, 'convert', src, dest, '--dtype', 'float16'], {
    timeoutMs: 1_800_000,
  });
  const convertMs = performance.now() - t;
  const { statSync, readdirSync } = await import('node:fs');
  let bytes = 0;
  for (const part of readdirSync(dest)) {
    const p = path.join(dest, part);
    if (statSync(p).isDirectory()) for (const f of readdirSync(p)) bytes += statSync(path.join(p, f)).size;
  }
  rmSync(src, { recursive: true, force: true });
  rmSync(dest, { recursive: true, force: true });
  log(
    `  convert ms-1.7b-shaped: ${(convertMs / 1000).toFixed(0)} s, peak RSS ${mib(run.peakRss).toFixed(0)} MiB`,
  );
  return { writeMs, convertMs, peakRss: run.peakRss, bytes, largestTensor: largest, unet };
}

export function convertSections(r: ConvertBench): Section[] {
  const u = r.unet;
  const share = u.gflops.median / u.matmul.median;
  return [
    {
      title: '8. Converted UNet throughput',
      headline: `${fmtSummary(u.gflops, 1)} GFLOP/s = ${(share * 100).toFixed(0)} % of onnxruntime's MatMul ${u.matmul.median.toFixed(1)} GFLOP/s`,
      columns: ['what', 'median (min–max)', 'how to reproduce'],
      rows: [
        [
          `UNet3D call, half-width text-to-video-ms-1.7b config (${(u.params / 1e6).toFixed(0)} M parameters), sample [${UNET_SHAPE.join(', ')}]`,
          `${fmtSummary(u.callMs, 0)} ms`,
          'bench/convert.ts unetThroughput(): buildUNet3D(MID_UNET) over random weights, onnxruntime CPU, default threads',
        ],
        [
          'MatMul and Conv work per call (from an onnxruntime profile)',
          `${u.gflop.toFixed(1)} GFLOP`,
          'profileFlops(): 2·out·K per MatMul/Gemm, 2·out·Cin·kernel per Conv',
        ],
        ['achieved', `${fmtSummary(u.gflops, 1)} GFLOP/s`, 'GFLOP / call time'],
        [
          `onnxruntime MatMul [${MATMUL_N}×${MATMUL_N}]·[${MATMUL_N}×${MATMUL_N}] float32`,
          `${fmtSummary(u.matmul, 1)} GFLOP/s`,
          'bench/convert.ts matmulGflops()',
        ],
      ],
      notes: [
        `The UNet reaches ${(share * 100).toFixed(0)} % of the MatMul rate: the rest of its time is element-wise work (group norms, ` +
          'activations, softmax, residual adds) that the FLOP count leaves out, and small matrices in the temporal attention.',
      ],
    },
    {
      title: '9. Converting a full-size checkpoint',
      goal: 'peak RSS bounded by the largest tensor plus a constant, not by the model',
      met: r.peakRss < r.largestTensor * 2 + 512 * 1024 ** 2,
      headline: `${(r.convertMs / 1000).toFixed(0)} s for ${(r.bytes / 1024 ** 3).toFixed(2)} GiB, peak RSS ${mib(r.peakRss).toFixed(0)} MiB (largest tensor ${mib(r.largestTensor).toFixed(0)} MiB as float32)`,
      columns: ['what', 'result', 'how to reproduce'],
      rows: [
        [
          'write the random checkpoint (float16 safetensors, 1.41 B + 340 M + 49.5 M parameters)',
          `${(r.writeMs / 1000).toFixed(0)} s`,
          'npm run make:random-checkpoint DIR',
        ],
        [
          'rdflow convert DIR OUT --dtype float16 (spawn to exit)',
          `${(r.convertMs / 1000).toFixed(0)} s, ${(r.bytes / 1024 ** 2 / (r.convertMs / 1000)).toFixed(0)} MiB/s`,
          'node bin/rdflow.js convert DIR OUT --dtype float16',
        ],
        [
          'peak RSS of the converter',
          `${mib(r.peakRss).toFixed(0)} MiB`,
          'VmHWM at exit (bench/rss-preload.mjs)',
        ],
        [
          'largest tensor (float32)',
          `${mib(r.largestTensor).toFixed(0)} MiB`,
          'the text encoder token embedding 49408 × 1024',
        ],
      ],
      notes: ['One run (it writes and reads about 7 GiB); the disk of this machine bounds the rate.'],
    },
  ];
}
