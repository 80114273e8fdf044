// Entry of the inference worker thread. Workers do not inherit the loader hooks the main thread
// registered (tsx via bin/rdflow.js, or vitest's transform), so register tsx here, then load the
// TypeScript worker.
import { register } from 'tsx/esm/api';

register();
await import('./worker.ts');
