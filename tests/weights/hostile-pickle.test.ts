// Hostile pickles inside a PyTorch checkpoint: huge counts, self-containing values, views that
// expand a tiny storage into gigabytes. Each fails with the file and the reason, without
// exhausting the stack or allocating far beyond the file's size.
import { describe, expect, it } from 'vitest';
import { openTorchCheckpoint } from '../../server/runtime/weights/index.ts';
import { unpickle } from '../../server/runtime/weights/pickle.ts';
import { Pickle, storageOf, torchPickle, torchZip, scratchFiles } from './fixtures.ts';

const file = scratchFiles('rdflow-hostile-pickle-');

const S = {
  '0': storageOf(
    'FloatStorage',
    Float32Array.from({ length: 24 }, (_, i) => i),
  ),
};

describe('hostile pickles', () => {
  it('APPENDS of two million items builds the list (no call-stack overflow)', () => {
    const count = 2_000_000;
    const b = new Uint8Array(4 + count + 2);
    b.set([0x80, 2, 0x5d, 0x28]); // PROTO 2, EMPTY_LIST, MARK
    b.fill(0x4e, 4, 4 + count); // NONE ...
    b.set([0x65, 0x2e], 4 + count); // APPENDS, STOP
    const list = unpickle(b, { label: 'big.pkl', globals: new Map() }) as unknown[];
    expect(list.length).toBe(count);
  });

  it('a pickle with more operations than the limit is refused, naming the offset', () => {
    const b = new Uint8Array(2 + 1000 + 1).fill(0x4e);
    b.set([0x80, 2]);
    b[b.length - 1] = 0x2e;
    expect(() => unpickle(b, { label: 'many.pkl', globals: new Map(), maxOps: 100 })).toThrow(
      /^many\.pkl: pickle has more than 100 operations \(at offset 101\): too large for a state dict$/,
    );
  });

  it('megabyte-long integers are refused at once (building them is quadratic: minutes)', () => {
    const n = 1 << 20;
    const b = new Uint8Array(2 + 5 + n + 1).fill(0x11);
    b.set([0x80, 2, 0x8b, n & 0xff, (n >> 8) & 0xff, (n >> 16) & 0xff, 0]); // PROTO 2, LONG4 n
    b[b.length - 1] = 0x2e;
    expect(() => unpickle(b, { label: 'long.pkl', globals: new Map() })).toThrow(
      /^long\.pkl: LONG4 of 1048576 bytes at offset 2 is too long for a state dict$/,
    );
    const digits = new TextEncoder().encode(`L${'9'.repeat(n)}L\n.`);
    expect(() =>
      unpickle(Uint8Array.from([0x80, 2, ...digits]), { label: 'long.pkl', globals: new Map() }),
    ).toThrow(/^long\.pkl: LONG literal of 1048576 digits at offset 2 is too long$/);
  });

  it('a wrapper dict that holds itself as "state_dict" is named, not followed forever', async () => {
    // D = {}; D["state_dict"] = D
    const q = new Pickle().proto(2).emptyDict().put().ustr('state_dict').get(0).setitem().stop();
    await expect(openTorchCheckpoint(file(torchZip(q.bytes(), S)), 'self.pth')).rejects.toThrow(
      'self.pth: "state_dict" refers back to a dict that holds it',
    );
  });

  it('DICT with a key and no value is refused (it silently dropped the key)', () => {
    const b = Uint8Array.from([0x80, 2, 0x28, 0x4b, 1, 0x4b, 2, 0x4b, 3, 0x64, 0x2e]); // MARK 1 2 3 DICT
    expect(() => unpickle(b, { label: 'odd.pkl', globals: new Map() })).toThrow(
      'odd.pkl: DICT with an odd number of items at offset 9',
    );
  });

  it('a dict keyed by a list that contains itself is described, not a JSON TypeError', async () => {
    // {L: 1} where L = [L] (memo: PUT then GET appends the list to itself).
    const q = new Pickle().proto(2).emptyDict().raw(0x5d).put().get(0).raw(0x61).int(1).setitem().stop();
    const err = await openTorchCheckpoint(file(torchZip(q.bytes(), S)), 'cyclic.pth').then(
      () => 'no error',
      (e: Error) => e.message,
    );
    expect(err).toBe(
      'cyclic.pth: no tensors at the top level and no "state_dict"/"model"/"module" dict inside (keys: <tuple>)',
    );
  });

  it('a stride-0 view over a huge size is refused at open, before reading allocates it', async () => {
    // 2^30 elements (4 GiB as float32) viewing one float of a 96-byte storage.
    const pkl = torchPickle([{ key: 'w', storage: '0', shape: [2 ** 30], stride: [0] }], S);
    await expect(openTorchCheckpoint(file(torchZip(pkl, S)), 'wide.pth')).rejects.toThrow(
      /^wide\.pth: tensor "w": its view \[1073741824\] \(stride \[0\]\) has 1073741824 elements, more than its storage "archive\/data\/0" holds \(96 bytes of float32\)/,
    );
  });
});
