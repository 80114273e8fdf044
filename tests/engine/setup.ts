// Shared setup for engine tests: a fresh engine over the test nodes in a temp folder, and event capture.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createEngine } from '../../server/engine/index.ts';
import type { ApiPrompt, EngineEvent } from '../../server/engine/types.ts';
import { createTestNodes, makeTestPaths } from '../helpers/engine-nodes.ts';

export function setupEngine(opts: { cacheBytes?: number; spillBytes?: number } = {}) {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'rdflow-engine-'));
  const paths = makeTestPaths(root);
  const { nodes, log } = createTestNodes();
  const engine = createEngine({ nodes, paths, ...opts });
  let n = 0;
  async function run(prompt: ApiPrompt, signal?: AbortSignal) {
    const events: EngineEvent[] = [];
    const result = await engine.run(prompt, {
      promptId: `p${++n}`,
      signal,
      onEvent: (e) => events.push(e),
    });
    return { result, events };
  }
  function cleanup() {
    engine.close();
    fs.rmSync(root, { recursive: true, force: true });
  }
  return { engine, log, paths, root, run, cleanup, nodes };
}

export function eventsOf<T extends EngineEvent['type']>(
  events: EngineEvent[],
  type: T,
): Extract<EngineEvent, { type: T }>[] {
  return events.filter((e): e is Extract<EngineEvent, { type: T }> => e.type === type);
}
