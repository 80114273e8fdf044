// The model families rdflow converts, and the one entry point that picks a family for a folder.
import { existsSync } from 'node:fs';
import path from 'node:path';
import type { ConversionPlan } from '../convert/plan.ts';
import { modelscopeFamily } from './modelscope/index.ts';
import { className, readConfig } from './shared.ts';
import type { ModelFamily } from './types.ts';
import { vidrdFamily } from './vidrd/index.ts';

/** Checked in order: VidRD's layout holds an SD folder, so it is recognised first. */
export const FAMILIES: readonly ModelFamily[] = [vidrdFamily, modelscopeFamily];

/** The family of a source folder, or an error that says what the folder is and what is supported. */
export async function planConversion(dir: string): Promise<ConversionPlan> {
  if (!existsSync(dir)) throw new Error(`${dir}: no such folder`);
  for (const family of FAMILIES) {
    if (await family.recognise(dir)) return family.plan(dir);
  }
  const supported = FAMILIES.map((f) => f.label).join('; ');
  if (existsSync(path.join(dir, 'unet', 'model.onnx'))) {
    throw new Error(`${dir} is already an ONNX model folder: LoadVideoModel opens it as it is`);
  }
  if (existsSync(path.join(dir, 'model_index.json'))) {
    const name = className(await readConfig(dir, 'model_index.json')) ?? '(none)';
    throw new Error(
      `model_index.json: _class_name "${name}" is not a model rdflow can convert (supported: ${supported})`,
    );
  }
  throw new Error(`${dir}: no model_index.json and no VidRD release files; rdflow converts: ${supported}`);
}
