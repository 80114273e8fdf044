// `npm run make:test-models [DIR] [VARIANT...]`: writes the small test model folders (diffusers
// ONNX layout, real graphs) into DIR (default ./models/test), one folder per variant, all
// variants unless named. Load one with LoadVideoModel (put DIR under the models folder) or
// `getRuntime().loadModel(path)`. The `slow` variant is the one for benchmarks (≥ 10 ms a UNet call).
import path from 'node:path';
import { TEST_VARIANTS, makeTestModel, type TestVariantName } from '../tests/helpers/models.ts';

const [dirArg, ...names] = process.argv.slice(2);
const dir = path.resolve(dirArg ?? path.join('models', 'test'));
const all = Object.keys(TEST_VARIANTS) as TestVariantName[];
const unknown = names.filter((n) => !(all as string[]).includes(n));
if (unknown.length > 0) {
  console.error(`unknown variant(s): ${unknown.join(', ')}; known: ${all.join(', ')}`);
  process.exit(2);
}
for (const name of names.length > 0 ? (names as TestVariantName[]) : all) {
  const out = await makeTestModel(path.join(dir, name), name);
  console.log(`${name}: ${out}`);
}
