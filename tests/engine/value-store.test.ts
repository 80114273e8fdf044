// The value store on its own: cells hold values while someone still needs them, loop-body values
// go to disk and are let go at their last reader, carried values are pinned, and what an iteration
// let go of is offered back to its node.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { createValueStore, type ValueStore } from '../../server/engine/value-store.ts';

let root: string;
let store: ValueStore;

beforeEach(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'rdflow-values-'));
  store = createValueStore({ tempRoot: root, memoryMaxBytes: 1_000_000, spillMaxBytes: 1_000_000 });
});
afterEach(() => {
  store.evict();
  fs.rmSync(root, { recursive: true, force: true });
});

const bodyCell = (nodeId: string, sig = `sig-${nodeId}`) =>
  store.cell({ nodeId, sig, inBody: true, outputNode: false, keep: false });

describe('value store', () => {
  test('a node outside loops is cached in memory and found by another cell with its signature', () => {
    const a = store.cell({ nodeId: '1', sig: 's1', inBody: false, outputNode: false, keep: false });
    store.put(a, [42], undefined);
    expect(a.executed).toBe(true);
    expect(store.isCached('s1')).toBe(true);
    const b = store.cell({ nodeId: '1', sig: 's1', inBody: false, outputNode: false, keep: false });
    expect(store.get(b)).toEqual([42]);
    expect(store.stats().memoryEntries).toBe(1);
    expect(store.heldBodyValues()).toBe(0);
  });

  test('a loop-body value goes to disk and is let go at its last reader in the iteration', () => {
    const a = bodyCell('5');
    a.consumers = 2;
    store.put(a, [new Float32Array(4)], undefined);
    expect(store.heldBodyValues()).toBe(1);
    expect(store.stats()).toMatchObject({ memoryEntries: 0, spillEntries: 1 });
    store.consumed(a, false);
    expect(a.values).toBeDefined();
    store.consumed(a, false);
    expect(a.values).toBeUndefined();
    expect(store.heldBodyValues()).toBe(0);
    // Read back from disk when asked again.
    expect(store.get(a)).toEqual([new Float32Array(4)]);
  });

  test('a kept value outlives its readers; a carried spilled value is pinned, not loaded', async () => {
    const a = store.cell({ nodeId: '8', sig: 's8', inBody: true, outputNode: false, keep: true });
    a.consumers = 1;
    store.put(a, [1], undefined);
    store.consumed(a, false);
    expect(a.values).toEqual([1]);
    store.release(a);
    let loaded = false;
    const pinned = await store.spill(a, async () => {
      loaded = true;
    });
    expect(pinned).toBe('s8');
    expect(loaded).toBe(false);
    store.unpin('s8');
  });

  test('what an iteration let go of is offered back to its node once, unless a carried value shares its buffer', () => {
    const shared = new Float32Array(8);
    const a = bodyCell('6');
    const b = bodyCell('7');
    store.put(a, [new Float32Array(8)], undefined);
    store.put(b, [shared], undefined);
    store.release(a);
    store.release(b);
    const carried = bodyCell('9');
    carried.values = [shared.subarray(0, 4)];
    store.endIteration([carried]);
    expect(store.recycled('7')).toBeUndefined();
    expect(store.recycled('6')).toHaveLength(1);
    expect(store.recycled('6')).toBeUndefined();
  });

  test("output nodes' entries are kept only by a run that succeeds", () => {
    const out = store.cell({ nodeId: '3', sig: 'out', inBody: false, outputNode: true, keep: false });
    store.put(out, [], { images: [1] });
    store.commit(false);
    expect(store.isCached('out')).toBe(false);
    store.put(out, [], { images: [1] });
    store.commit(true);
    expect(store.cached('out')?.ui).toEqual({ images: [1] });
  });

  test('letGo empties every cell still holding loop-body values', () => {
    const a = bodyCell('5');
    store.put(a, [1], undefined);
    store.letGo();
    expect(a.values).toBeUndefined();
    expect(store.heldBodyValues()).toBe(0);
  });
});
