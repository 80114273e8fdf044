// Model folder validation: each missing part or misfit model is named by file and reason, before
// any session is created; listing finds the folders with a model_index.json.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getRuntime, inspectModelFolder, listModelFolders } from '../../server/runtime/index.ts';
import { ModelBuilder } from '../../server/runtime/onnx/builder.ts';
import { readOnnxHeader } from '../../server/runtime/onnx/header.ts';
import { makeTestModel } from '../helpers/models.ts';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'rdflow-folder-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

let n = 0;
/** A fresh complete folder to break. */
async function folder(variant: Parameters<typeof makeTestModel>[1] = 'tiny'): Promise<string> {
  return makeTestModel(path.join(tmp, 'm', `f${n++}`), variant);
}

/** An image UNet: sample [B,4,h,w] and no timestep input. */
function imageUNet(): Uint8Array {
  const b = new ModelBuilder();
  b.input('sample', 'float32', ['batch', 4, 'height', 'width']);
  b.input('encoder_hidden_states', 'float32', ['batch', 77, 32]);
  b.node('Identity', ['sample'], ['out_sample']);
  b.output('out_sample', 'float32', ['batch', 4, 'height', 'width']);
  return b.toBytes();
}

describe('inspectModelFolder', () => {
  let complete: string;
  beforeAll(async () => {
    complete = await folder();
  });

  it('finds nothing wrong with a complete folder', async () => {
    expect(await inspectModelFolder(complete)).toEqual([]);
  });

  it.each([
    'model_index.json',
    'scheduler/scheduler_config.json',
    'tokenizer/tokenizer_config.json',
    'tokenizer/vocab.json',
    'tokenizer/merges.txt',
    'text_encoder/model.onnx',
    'unet/model.onnx',
    'vae_decoder/model.onnx',
  ])('names a missing %s', async (rel) => {
    const dir = await folder();
    rmSync(path.join(dir, rel));
    const problems = await inspectModelFolder(dir);
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(new RegExp(`^${rel.replace(/\./g, '\\.')}: missing`));
  });

  it('accepts tokenizer.json in place of vocab.json + merges.txt', async () => {
    expect(await inspectModelFolder(await folder('sd2'))).toEqual([]);
  });

  it('names a JSON file that does not parse', async () => {
    const dir = await folder();
    writeFileSync(path.join(dir, 'scheduler/scheduler_config.json'), '{ "beta_start": ');
    expect((await inspectModelFolder(dir))[0]).toMatch(/^scheduler\/scheduler_config\.json: not valid JSON/);
  });

  it('sees a file changed since the folder was last inspected', async () => {
    const dir = await folder();
    const file = path.join(dir, 'scheduler/scheduler_config.json');
    const good = readFileSync(file);
    expect(await inspectModelFolder(dir)).toEqual([]);
    writeFileSync(file, '{ "beta_start": ');
    expect((await inspectModelFolder(dir))[0]).toMatch(/^scheduler\/scheduler_config\.json: not valid JSON/);
    writeFileSync(file, good);
    expect(await inspectModelFolder(dir)).toEqual([]);
  });

  it('names a file that is not ONNX', async () => {
    const dir = await folder();
    writeFileSync(path.join(dir, 'vae_decoder/model.onnx'), 'version https://git-lfs.github.com/spec/v1\n');
    expect((await inspectModelFolder(dir))[0]).toMatch(/^vae_decoder\/model\.onnx: cannot be read as ONNX/);
  });

  it('explains an image UNet: 4-D sample and no timestep', async () => {
    const dir = await folder();
    writeFileSync(path.join(dir, 'unet/model.onnx'), imageUNet());
    const problems = await inspectModelFolder(dir);
    expect(problems).toEqual([
      expect.stringMatching(/^unet\/model\.onnx: no input "timestep"/),
      expect.stringMatching(
        /^unet\/model\.onnx: input "sample" has shape \[batch, 4, height, width\]: an image UNet/,
      ),
      expect.stringMatching(
        /^unet\/model\.onnx: output "out_sample" has shape \[batch, 4, height, width\]; expected rank 5/,
      ),
    ]);
  });

  it('names a text encoder with float input ids', async () => {
    const dir = await folder();
    const b = new ModelBuilder();
    b.input('input_ids', 'float32', [1, 77]);
    b.node('Identity', ['input_ids'], ['last_hidden_state']);
    b.output('last_hidden_state', 'float32', [1, 77, 1]);
    writeFileSync(path.join(dir, 'text_encoder/model.onnx'), b.toBytes());
    expect(await inspectModelFolder(dir)).toEqual([
      'text_encoder/model.onnx: input "input_ids" is float32; expected int32 or int64',
    ]);
  });

  it('names a scheduler config the DDIM scheduler cannot use', async () => {
    const dir = await folder();
    writeFileSync(
      path.join(dir, 'scheduler/scheduler_config.json'),
      JSON.stringify({ beta_schedule: 'cubic' }),
    );
    const problems = await inspectModelFolder(dir);
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/^scheduler\/scheduler_config\.json: scheduler config: beta_schedule/);
  });

  it('names a UNet whose text width differs from the text encoder’s', async () => {
    const dir = await folder();
    const other = await folder('sd1');
    writeFileSync(path.join(dir, 'unet/model.onnx'), readFileSync(path.join(other, 'unet/model.onnx')));
    expect(await inspectModelFolder(dir)).toEqual([
      'unet/model.onnx: input "encoder_hidden_states" takes width 768, but text_encoder/model.onnx outputs width 32',
    ]);
  });

  it('names a missing external weights file', async () => {
    const dir = await folder('external');
    expect(await inspectModelFolder(dir)).toEqual([]);
    rmSync(path.join(dir, 'unet/weights.bin'));
    expect(await inspectModelFolder(dir)).toEqual([
      'unet/weights.bin: missing (external weights of unet/model.onnx)',
    ]);
  });

  it('fails loadModel with the same messages, before creating a session', async () => {
    const dir = await folder();
    rmSync(path.join(dir, 'unet/model.onnx'));
    const before = getRuntime().stats().sessionsCreated;
    await expect(getRuntime().loadModel(dir)).rejects.toThrow('unet/model.onnx: missing');
    expect(getRuntime().stats().sessionsCreated).toBe(before);
  });

  it('says when the path is not a folder', async () => {
    expect(await inspectModelFolder(path.join(tmp, 'nope'))).toEqual([
      `${path.join(tmp, 'nope')}: not a folder`,
    ]);
  });
});

describe('readOnnxHeader', () => {
  it('reads names, element types and symbolic/fixed dims without loading weights', async () => {
    const dir = await folder('fixed-batch');
    const h = await readOnnxHeader(path.join(dir, 'unet/model.onnx'));
    expect(h.inputs).toEqual([
      { name: 'sample', type: 'float32', shape: [1, 4, 'frames', 'height', 'width'] },
      { name: 'timestep', type: 'int64', shape: [1] },
      { name: 'encoder_hidden_states', type: 'float32', shape: [1, 'sequence', 32] },
    ]);
    expect(h.outputs).toEqual([
      { name: 'out_sample', type: 'float32', shape: [1, 4, 'frames', 'height', 'width'] },
    ]);
    expect(h.externalFiles).toEqual([]);
  });
});

describe('listModelFolders', () => {
  it('lists sub-folders that have a model_index.json, sorted', async () => {
    const models = path.join(tmp, 'list');
    await makeTestModel(path.join(models, 'zeta'));
    await makeTestModel(path.join(models, 'alpha'));
    mkdirSync(path.join(models, 'not-a-model'));
    writeFileSync(path.join(models, 'file.txt'), '');
    expect(listModelFolders(models)).toEqual(['alpha', 'zeta']);
    expect(listModelFolders(path.join(tmp, 'absent'))).toEqual([]);
  });
});
