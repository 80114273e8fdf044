// Checkpoint readers and the safetensors writer, in one import.
export { openComponentWeights } from './component.ts';
export { openSafetensors, writeSafetensors, type SafetensorsEntry } from './safetensors.ts';
export { openTorchCheckpoint } from './torch.ts';
export { DTYPE_BYTES, numel, type StoredDType, type TensorInfo, type WeightSource } from './types.ts';
