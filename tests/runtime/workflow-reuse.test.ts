// Session reuse seen from a workflow: the second run of the shipped single-clip workflow (a fresh
// engine, so nothing comes from the engine's cache) creates no new onnxruntime session.
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { allNodes } from '../../nodes/index.ts';
import { createEngine } from '../../server/engine/index.ts';
import { getRuntime } from '../../server/runtime/index.ts';
import { makeTestModel } from '../helpers/models.ts';
import { makePaths } from '../nodes/context.ts';
import { readWorkflow, shrink } from '../pipeline/workflow.ts';

const paths = makePaths('rdflow-runtime-reuse-');
beforeAll(async () => {
  await makeTestModel(path.join(paths.models, 'tiny'));
});
afterAll(() => paths.cleanup());

async function runOnce(tag: string) {
  const prompt = shrink(readWorkflow('single-clip.json'), {
    model: 'tiny',
    steps: 2,
    size: 64,
    frames: 4,
    prefix: tag,
  });
  const result = await createEngine({ nodes: allNodes, paths, services: { models: getRuntime() } }).run(
    prompt,
    { promptId: tag },
  );
  expect(result.status).toBe('success');
}

it('creates the three sessions on the first run and none on the second', async () => {
  const before = getRuntime().stats().sessionsCreated;
  await runOnce('first');
  const afterFirst = getRuntime().stats();
  expect(afterFirst.sessionsCreated - before).toBe(3);
  await runOnce('second');
  expect(getRuntime().stats()).toEqual(afterFirst);
});
