import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['tests/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // 2 cores: onnxruntime sessions and ffmpeg compete with test workers.
    maxWorkers: 2,
    reporters: ['default'],
  },
});
