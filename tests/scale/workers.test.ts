// Many workers on one queue, as separate processes on a real redis-server: a worker killed -9
// mid-job hands it to another, which continues from its last clip and finishes it exactly once;
// /interrupt from any process stops the job where it runs; each client gets its own events.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEventBus, type HubSink } from '../../server/api/redis/bus.ts';
import { events, item, noRedis, startDeployment, until, untilEvent, type Deployment } from './harness.ts';

interface Received {
  json: { type: string; data: Record<string, unknown>; clientId: string | null | undefined }[];
  binary: { text: string; clientId: string | null | undefined }[];
}

function sink(): HubSink & Received {
  const r: Received = { json: [], binary: [] };
  return {
    ...r,
    send(type, data, clientId) {
      r.json.push({ type, data: data as Record<string, unknown>, clientId });
    },
    sendBinary(frame, clientId) {
      r.binary.push({ text: Buffer.from(frame).toString(), clientId });
    },
  };
}

describe.skipIf(noRedis)('workers on one Redis queue', () => {
  let d: Deployment;

  beforeAll(async () => {
    d = await startDeployment('workers', { workers: ['A', 'B'] });
  });

  afterAll(async () => {
    await d?.stop();
  });

  it('a worker killed -9 mid-job: another takes it over from its last clip and finishes it once', async () => {
    const { api, dataDir, workers } = d;
    await api.enqueue(item('crash', { steps: 12 }));
    const started = await untilEvent(dataDir, /^[AB] start crash from 0/);
    const victim = workers.find((w) => w.name === started[0])!;
    const survivor = workers.find((w) => w !== victim)!;
    await untilEvent(dataDir, new RegExp(`^${victim.name} step crash 3$`));
    victim.child.kill('SIGKILL');
    await victim.exited;

    const resumed = await untilEvent(dataDir, new RegExp(`^${survivor.name} start crash from`));
    expect(Number(/from (\d+)/.exec(resumed)![1])).toBeGreaterThanOrEqual(3);
    expect(resumed).toMatch(/restarts 1$/);
    await untilEvent(dataDir, /done crash$/);
    const log = events(dataDir);
    expect(log.filter((l) => / done crash$/.test(l))).toEqual([`${survivor.name} done crash`]);
    expect(log.filter((l) => l.startsWith(`${victim.name} step crash`)).length).toBeLessThan(12);
    expect(fs.readdirSync(path.join(dataDir, 'out'))).toEqual(['crash.txt']);
    expect(fs.readFileSync(path.join(dataDir, 'out', 'crash.txt'), 'utf8')).toBe('crash 12 clips\n');
    expect(await api.has('crash')).toBe(false);
    expect(await api.remaining()).toBe(0);

    // The dead worker's place is taken, so the rest of the tests have two workers again.
    workers.splice(workers.indexOf(victim), 1);
    await d.addWorker('C');
  });

  it('/interrupt on any process stops the job on the worker that runs it; running shows all workers', async () => {
    const { api, bus, dataDir } = d;
    await api.enqueue(item('long1', { steps: 200 }));
    await api.enqueue(item('long2', { steps: 200 }));
    await untilEvent(dataDir, / step long1 1$/);
    await untilEvent(dataDir, / step long2 1$/);
    expect((await api.runningAll()).map((i) => i.promptId).sort()).toEqual(['long1', 'long2']);
    // What a reconnecting client is told its prompt executes, whichever worker runs it.
    const nodes = await until('both nodes reported', async () => {
      const r = await api.runningNodes();
      return r.every((x) => x.node === 'clip') && r;
    });
    expect(nodes.map((x) => x.item.promptId).sort()).toEqual(['long1', 'long2']);

    await bus.interrupt('long2');
    await untilEvent(dataDir, / interrupted long2$/);
    await bus.interrupt();
    await untilEvent(dataDir, / interrupted long1$/);
    await until('an empty queue', async () => (await api.remaining()) === 0);
    expect(events(dataDir).filter((l) => / done long/.test(l))).toEqual([]);
  });

  it('each API server forwards only the events of its own clients, and broadcasts to all', async () => {
    const { api, bus, dataDir, redis } = d;
    const one = sink();
    const two = sink();
    const relayOne = await bus.relay(one);
    const busTwo = createEventBus({ url: redis.url, name: 'workers' });
    const relayTwo = await busTwo.relay(two);
    await relayOne.watch('c1');
    await relayTwo.watch('c2');
    expect(await bus.listeners('c1')).toBe(1);
    expect(await bus.listeners('nobody')).toBe(0);

    await api.enqueue(item('for-c1', { client_id: 'c1', steps: 3 }));
    await api.enqueue(item('for-c2', { client_id: 'c2', steps: 3 }));
    await api.enqueue(item('stop-me', { client_id: 'c2', steps: 200 }));
    await untilEvent(dataDir, / step stop-me 1$/);
    await bus.interrupt('stop-me');
    await until(
      'both ends',
      () =>
        one.json.some((m) => m.data.prompt_id === 'for-c1' && m.type === 'executing') &&
        two.json.some((m) => m.data.prompt_id === 'stop-me' && m.type === 'executing'),
    );

    const ids = (r: Received) =>
      new Set(r.json.filter((m) => m.clientId !== null).map((m) => m.data.prompt_id));
    expect(ids(one)).toEqual(new Set(['for-c1']));
    expect(ids(two)).toEqual(new Set(['for-c2', 'stop-me']));
    expect(one.json.filter((m) => m.type === 'progress').map((m) => m.data.value)).toEqual([1, 2, 3]);
    expect(one.binary.map((b) => b.text)).toEqual([
      'preview for-c1 1',
      'preview for-c1 2',
      'preview for-c1 3',
    ]);
    expect(two.binary.every((b) => b.text.includes('for-c2') || b.text.includes('stop-me'))).toBe(true);
    // execution_interrupted goes to every client, on every server (ComfyUI's sid None).
    for (const r of [one, two]) {
      expect(r.json.filter((m) => m.type === 'execution_interrupted' && m.clientId === null)).toHaveLength(1);
    }
    await relayOne.close();
    await relayTwo.close();
    await busTwo.close();
  });
});
