// transformers' CLIPTextModel built from text_encoder/config.json reproduces the upstream
// text_encoder cases (safetensors and VidRD's ModelT2V.pth under `text_encoder.`), keeps the
// sequence axis dynamic with the causal mask and pools as transformers does, and refuses configs
// and checkpoints it cannot honour by field and key.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import {
  buildClipTextEncoder,
  clipIgnore,
  parseClipTextConfig,
  type ClipTextConfig,
} from '../../server/runtime/convert/clip-text.ts';
import { Net, assertStrict, type WeightDType } from '../../server/runtime/convert/net.ts';
import { openSafetensors } from '../../server/runtime/weights/safetensors.ts';
import { openTorchCheckpoint } from '../../server/runtime/weights/torch.ts';
import type { TensorInfo, WeightSource } from '../../server/runtime/weights/types.ts';
import {
  caseTensor,
  float32Bar,
  maxAbs,
  maxAbsDiff,
  modelsDir,
  openNet,
  readCase,
  readExpected,
} from '../helpers/convert.ts';

const msDir = path.join(modelsDir, 'modelscope-tiny', 'text_encoder');
const vidrdConfig = path.join(
  modelsDir,
  'vidrd-tiny',
  'stable-diffusion-2-1-base',
  'text_encoder',
  'config.json',
);
const vidrdCheckpoint = path.join(modelsDir, 'vidrd-tiny', 'ModelT2V.pth');

function readConfig(file: string): ClipTextConfig {
  return parseClipTextConfig(JSON.parse(readFileSync(file, 'utf8')) as unknown, file);
}

interface Built {
  session: ort.InferenceSession;
  dispose: () => Promise<void>;
}

async function build(
  source: WeightSource,
  cfg: ClipTextConfig,
  opts: { dtype?: WeightDType; prefix?: string } = {},
): Promise<Built> {
  const net = new Net(source, {
    name: 'text_encoder',
    dtype: opts.dtype,
    prefix: opts.prefix,
    ignore: clipIgnore,
  });
  buildClipTextEncoder(net, cfg);
  assertStrict('text_encoder', net.report());
  return openNet(net);
}

function ids(rows: number[][]): ort.Tensor {
  return new ort.Tensor(
    'int64',
    BigInt64Array.from(rows.flat(), (v) => BigInt(v)),
    [rows.length, rows[0].length],
  );
}

/** Runs the model's text_encoder case; max |diff| and the README's bar for both outputs. */
async function runCase(
  model: string,
  m: Built,
): Promise<Record<'last_hidden_state' | 'pooler_output', { diff: number; bar: number; maxRef: number }>> {
  const c = readCase(model, 'text_encoder');
  const out = await m.session.run({ input_ids: caseTensor(model, c.inputs.input_ids) });
  const result = {} as Record<
    'last_hidden_state' | 'pooler_output',
    { diff: number; bar: number; maxRef: number }
  >;
  for (const name of ['last_hidden_state', 'pooler_output'] as const) {
    const want = readExpected(model, c.outputs[name].file!).data as Float32Array;
    expect(out[name].dims).toEqual(c.outputs[name].shape);
    result[name] = {
      diff: maxAbsDiff(out[name].data as Float32Array, want),
      bar: float32Bar(want),
      maxRef: maxAbs(want),
    };
  }
  return result;
}

describe('CLIPTextModel from config.json', () => {
  it('modelscope-tiny (safetensors): the text_encoder case within the float32 bar', async () => {
    const m = await build(
      await openSafetensors(path.join(msDir, 'model.safetensors')),
      readConfig(path.join(msDir, 'config.json')),
    );
    try {
      expect(m.session.inputNames).toEqual(['input_ids']);
      expect(m.session.outputNames).toEqual(['last_hidden_state', 'pooler_output']);
      const r = await runCase('modelscope-tiny', m);
      // Measured: 1.2e-6 and 7.7e-7 (bar 2.7e-3).
      expect(r.last_hidden_state.diff).toBeLessThanOrEqual(r.last_hidden_state.bar);
      expect(r.pooler_output.diff).toBeLessThanOrEqual(r.pooler_output.bar);
      expect(r.last_hidden_state.diff).toBeLessThan(1e-5);
    } finally {
      await m.dispose();
    }
  });

  it('modelscope-tiny with float16 weights stays within the float16 export bar', async () => {
    const m = await build(
      await openSafetensors(path.join(msDir, 'model.safetensors')),
      readConfig(path.join(msDir, 'config.json')),
      {
        dtype: 'float16',
      },
    );
    try {
      const r = await runCase('modelscope-tiny', m);
      // Measured: 2.2e-3 and 2.1e-3 (max |expected| 2.7): weight rounding only, the graph is float32.
      for (const o of [r.last_hidden_state, r.pooler_output]) {
        expect(o.diff).toBeLessThanOrEqual(1e-2 * Math.max(1, o.maxRef));
        expect(o.diff).toBeGreaterThan(1e-5); // the weights really were stored as float16
      }
    } finally {
      await m.dispose();
    }
  });

  it('vidrd-tiny: ModelT2V.pth under text_encoder. (with its position_ids buffer) within the float32 bar', async () => {
    const source = await openTorchCheckpoint(vidrdCheckpoint);
    expect(source.tensors.has('text_encoder.text_model.embeddings.position_ids')).toBe(true);
    const m = await build(source, readConfig(vidrdConfig), { prefix: 'text_encoder.' });
    try {
      const r = await runCase('vidrd-tiny', m);
      expect(r.last_hidden_state.diff).toBeLessThanOrEqual(r.last_hidden_state.bar);
      expect(r.pooler_output.diff).toBeLessThanOrEqual(r.pooler_output.bar);
      expect(r.last_hidden_state.diff).toBeLessThan(1e-5);
    } finally {
      await m.dispose();
      await source.close();
    }
  });

  it('sequence is dynamic: a prefix of the ids gives the same states (causal) and pools at its first EOS', async () => {
    const m = await build(
      await openSafetensors(path.join(msDir, 'model.safetensors')),
      readConfig(path.join(msDir, 'config.json')),
    );
    try {
      const c = readCase('modelscope-tiny', 'text_encoder');
      const full = readExpected('modelscope-tiny', c.outputs.last_hidden_state.file!).data as Float32Array;
      const pooled = readExpected('modelscope-tiny', c.outputs.pooler_output.file!).data as Float32Array;
      const L = 14; // the longest prompt's <|endoftext|> is at 13
      const out = await m.session.run({ input_ids: ids(c.token_ids!.map((r) => r.slice(0, L))) });
      expect(out.last_hidden_state.dims).toEqual([3, L, 32]);
      const got = out.last_hidden_state.data as Float32Array;
      const want = new Float32Array(3 * L * 32);
      for (let b = 0; b < 3; b++) want.set(full.subarray(b * 77 * 32, (b * 77 + L) * 32), b * L * 32);
      expect(maxAbsDiff(got, want)).toBeLessThan(1e-5);
      expect(maxAbsDiff(out.pooler_output.data as Float32Array, pooled)).toBeLessThan(1e-5);
    } finally {
      await m.dispose();
    }
  });

  it('pools at the first eos_token_id (position 0 when absent), or the largest id for the legacy eos_token_id 2', async () => {
    const cfg = readConfig(path.join(msDir, 'config.json'));
    const rows = [
      [832, 5, 833, 7, 833, 0],
      [5, 6, 7, 8, 9, 4], // no <|endoftext|>
      [2, 3, 2, 0, 1, 0],
    ];
    const at = (m: Built, want: number[]) =>
      m.session.run({ input_ids: ids(rows) }).then((out) => {
        const h = out.last_hidden_state.data as Float32Array;
        const p = out.pooler_output.data as Float32Array;
        want.forEach((pos, b) => {
          const row = h.subarray((b * 6 + pos) * 32, (b * 6 + pos + 1) * 32);
          expect(maxAbsDiff(p.subarray(b * 32, (b + 1) * 32), row), `row ${b} at ${pos}`).toBe(0);
        });
      });
    for (const [eos, want] of [
      [833, [2, 0, 0]],
      [2, [2, 4, 1]], // argmax of the ids: 833, 9, 3
    ] as const) {
      const m = await build(await openSafetensors(path.join(msDir, 'model.safetensors')), {
        ...cfg,
        eos_token_id: eos,
      });
      try {
        await at(m, [...want]);
      } finally {
        await m.dispose();
      }
    }
  });

  it('refuses config fields it cannot build, naming the file, field and supported values', () => {
    const raw = JSON.parse(readFileSync(path.join(msDir, 'config.json'), 'utf8')) as Record<string, unknown>;
    expect(() => parseClipTextConfig({ ...raw, hidden_act: 'gelu_new' }, 'te/config.json')).toThrow(
      /^te\/config\.json: hidden_act: "gelu_new" is not supported \(gelu, quick_gelu, relu, silu, swish are\)$/,
    );
    expect(() => parseClipTextConfig({ ...raw, num_attention_heads: 5 }, 'te/config.json')).toThrow(
      'te/config.json: num_attention_heads: 5 heads do not split hidden_size = 32',
    );
    expect(() => parseClipTextConfig({ ...raw, hidden_size: '32' }, 'te/config.json')).toThrow(
      /te\/config\.json: hidden_size: /,
    );
    expect(() => parseClipTextConfig({ ...raw, model_type: 'clip' }, 'te/config.json')).toThrow(
      'te/config.json: model_type: "clip" is not supported',
    );
    // Unknown extra keys pass; missing ones take CLIPTextConfig's defaults.
    const cfg = parseClipTextConfig({ some_future_key: 1 }, 'te/config.json');
    expect([cfg.hidden_size, cfg.num_hidden_layers, cfg.hidden_act, cfg.eos_token_id]).toEqual([
      512,
      12,
      'quick_gelu',
      49407,
    ]);
  });

  it('names a missing key and a wrong shape of the checkpoint', async () => {
    const real = await openSafetensors(path.join(msDir, 'model.safetensors'));
    const tensors = new Map<string, TensorInfo>(real.tensors);
    tensors.delete('text_model.encoder.layers.1.mlp.fc2.bias');
    const emb = tensors.get('text_model.embeddings.token_embedding.weight')!;
    tensors.set(emb.key, { ...emb, shape: [800, 32] });
    const broken: WeightSource = { tensors, read: (k) => real.read(k), close: () => real.close() };
    const net = new Net(broken, { name: 'text_encoder', ignore: clipIgnore });
    buildClipTextEncoder(net, readConfig(path.join(msDir, 'config.json')));
    expect(() => assertStrict('text_encoder', net.report())).toThrow(
      'text_encoder: the checkpoint does not fit the config: missing keys (1): text_model.encoder.layers.1.mlp.fc2.bias; shape mismatches (1): text_model.embeddings.token_embedding.weight: checkpoint [800, 32], config implies [834, 32]',
    );
    await real.close();
  });

  it('counts position_ids as unexpected unless clipIgnore is given', async () => {
    const source = await openTorchCheckpoint(vidrdCheckpoint);
    try {
      const net = new Net(source, { name: 'text_encoder', prefix: 'text_encoder.' });
      buildClipTextEncoder(net, readConfig(vidrdConfig));
      expect(net.report().unexpected).toEqual(['text_model.embeddings.position_ids']);
      expect(clipIgnore('text_model.embeddings.position_ids')).toBe(true);
      expect(clipIgnore('text_model.embeddings.position_embedding.weight')).toBe(false);
    } finally {
      await source.close();
    }
  });
});
