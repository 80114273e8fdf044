// Redis killed and restarted under a running deployment (appendonly yes, as docs/scale-out.md asks): the
// pending prompts are still there afterwards, and the API side (queue, event relay) and the
// worker process (blocking fetch, lock renewal, interrupt subscription) reconnect by themselves.
import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { item, noRedis, until, untilEvent, type Deployment, startDeployment } from './harness.ts';

describe.skipIf(noRedis)('a Redis restart', () => {
  let d: Deployment;

  beforeAll(async () => {
    // A lock that outlasts the restart: the running prompt stays with its worker.
    d = await startDeployment('restart', {
      appendonly: true,
      workers: ['W'],
      timing: { lockDuration: 10_000 },
    });
  });

  afterAll(async () => {
    await d?.stop();
  });

  it('keeps pending prompts, and every side reconnects by itself', async () => {
    const { api, bus, redis, dataDir } = d;
    const got: string[] = [];
    const relay = await bus.relay({
      send: (type, data) => got.push(`${type} ${(data as { prompt_id: string }).prompt_id}`),
      sendBinary: () => undefined,
    });
    await relay.watch('c');
    await api.enqueue(item('busy', { client_id: 'c', steps: 1000 }));
    await untilEvent(dataDir, /^W step busy 1$/);
    await api.enqueue(item('pend1', { client_id: 'c', steps: 2 }));
    await api.enqueue(item('pend2', { client_id: 'c', steps: 2 }), { front: true });

    // kill -9: only what the AOF holds comes back (appendfsync always in the test instance).
    await redis.kill();
    await redis.restart();

    expect((await api.pending()).map((i) => i.promptId)).toEqual(['pend2', 'pend1']);
    expect((await api.running())?.promptId).toBe('busy');
    // The worker's interrupt subscription came back: the running prompt stops.
    await until('the interrupt', async () => {
      await bus.interrupt('busy');
      return fs.readFileSync(`${dataDir}/events.log`, 'utf8').includes('W interrupted busy');
    });
    await api.enqueue(item('after', { client_id: 'c', steps: 1 }));
    await untilEvent(dataDir, /^W done after$/);
    expect(
      fs
        .readFileSync(`${dataDir}/events.log`, 'utf8')
        .split('\n')
        .filter((l) => / done /.test(l)),
    ).toEqual(['W done pend2', 'W done pend1', 'W done after']);
    // The relay resubscribed: the prompts run after the restart reached their client.
    await until('the events', () => got.includes('executing after'));
    expect(got).toContain('progress pend1');
    expect(await api.remaining()).toBe(0);
    await relay.close();
  });
});
