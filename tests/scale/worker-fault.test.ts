// Which failures a shared queue retries on another try (a reason of the worker) and which it
// reports at once (a reason of the prompt): server/api/runner.ts's isWorkerFault.
import { describe, expect, it } from 'vitest';
import { isWorkerFault } from '../../server/api/runner.ts';

describe('isWorkerFault', () => {
  it('memory and a dead inference worker are the worker’s', () => {
    for (const m of [
      'out of memory (test)',
      'Array buffer allocation failed',
      'Cannot allocate memory',
      'spawn ENOMEM',
      'Worker terminated due to reaching memory limit: ERR_WORKER_OUT_OF_MEMORY',
      'inference worker stopped: exit code 134',
    ])
      expect(isWorkerFault(m), m).toBe(true);
  });

  it('a node’s own error is the prompt’s', () => {
    for (const m of ['bad input', 'Model folder models/x not found', 'width must be a multiple of 8'])
      expect(isWorkerFault(m), m).toBe(false);
  });
});
