// Builds the editor into dist/client, which the server serves at `/`. Paths are relative to this
// file so `vite build --config client/vite.config.ts` works from the repository root.
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

const root = fileURLToPath(new URL('.', import.meta.url));

export default defineConfig({
  root,
  // Relative asset URLs: the page also works when served under a path prefix.
  base: './',
  build: {
    outDir: fileURLToPath(new URL('../dist/client', import.meta.url)),
    emptyOutDir: true,
    sourcemap: true,
    // litegraph is one large module; splitting it buys nothing for a local tool.
    chunkSizeWarningLimit: 2000,
    rolldownOptions: {
      onwarn(warning, warn) {
        // litegraph's number widget evaluates typed arithmetic ("2*8") with eval; that is its
        // documented behaviour, not something this build can change.
        if (warning.code === 'EVAL' && /litegraph/.test(warning.id ?? '')) return;
        warn(warning);
      },
    },
  },
  server: {
    // `vite --config client/vite.config.ts` during development talks to a local `rdflow serve`.
    proxy: {
      '/api': 'http://127.0.0.1:8188',
      '/ws': { target: 'ws://127.0.0.1:8188', ws: true },
    },
  },
});
