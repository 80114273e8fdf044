// Reads the PyTorch test vectors from ../shared/vectors (relative to the repo root).
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { npyToTensor } from '../../server/core/npy.ts';
import type { Tensor } from '../../server/core/tensor-type.ts';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const vectorsDir = path.resolve(repoRoot, '..', 'shared', 'vectors');

export function readVectorJson(name: string): unknown {
  return JSON.parse(readFileSync(path.join(vectorsDir, name), 'utf8'));
}

export function readVectorNpy(name: string): Tensor {
  return npyToTensor(readFileSync(path.join(vectorsDir, name)));
}
