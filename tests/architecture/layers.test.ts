// The layering of docs/architecture.md, checked on every import (type-only ones included): a folder
// imports only the folders listed above it. The rules live in .dependency-cruiser.cjs.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { cruise, type ICruiseResult, type IViolation } from 'dependency-cruiser';
import extractDepcruiseOptions from 'dependency-cruiser/config-utl/extract-depcruise-options';
import { beforeAll, describe, expect, it } from 'vitest';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const LAYERED = ['server', 'nodes', 'client'];

/** One line per violation: `from → to (rule)`, as a reviewer reads it. */
function describeViolation(v: IViolation): string {
  return `${v.from} → ${v.to} (${v.rule.name})`;
}

let result: ICruiseResult;

beforeAll(async () => {
  const options = await extractDepcruiseOptions(path.join(repo, '.dependency-cruiser.cjs'));
  // Paths are relative to baseDir, as the rules' `^server/…` expect, whatever the working directory.
  const reported = await cruise(LAYERED, { ...options, baseDir: repo, validate: true });
  result = reported.output as ICruiseResult;
});

describe('layers', () => {
  it('no import goes up a layer', () => {
    expect(result.summary.violations.map(describeViolation)).toEqual([]);
  });

  it('sees every layer and type-only imports (an empty cruise would pass the check vacuously)', () => {
    const sources = result.modules.map((m) => m.source);
    for (const folder of [
      'server/core/',
      'server/engine/',
      'server/runtime/',
      'server/api/',
      'nodes/',
      'client/',
    ]) {
      expect(
        sources.some((s) => s.startsWith(folder)),
        folder,
      ).toBe(true);
    }
    const typeOnly = result.modules
      .flatMap((m) => m.dependencies)
      .some((d) => d.dependencyTypes.includes('type-only'));
    expect(typeOnly).toBe(true);
  });
});
