// Benchmark 12, scale-out on Redis (issue 19): real `rdflow serve` / `rdflow worker` processes on a
// real redis-server (tests/helpers/redis.ts), measured from a client in this process.
//   - start latency: POST /prompt → the client's `execution_start`, one prompt at a time, on the
//     embedded queue (`rdflow serve`) vs Redis (`rdflow serve --queue … --workers 0` + one
//     `rdflow worker`);
//   - progress-event latency: a message published as a worker publishes it → the client's socket
//     on the API server (Redis PUBLISH, the server's relay, its WebSocket);
//   - Redis's own counters (INFO stats) per job, per progress event and per idle second;
//   - jobs per minute with 1 and 2 workers (CPU-bound here: both workers share this machine's cores).
import path from 'node:path';
import { Redis } from 'ioredis';
import WebSocket from 'ws';
import { createEventBus } from '../server/api/redis/bus.ts';
import type { ApiPrompt } from '../server/engine/types.ts';
import { startRedis } from '../tests/helpers/redis.ts';
import { BENCH_MODEL, workflowPrompt, type BenchEnv } from './config.ts';
import { rdflow, type RdflowChild } from './proc.ts';
import type { Section } from './report.ts';
import { median, percentile } from './stats.ts';

/** One 64×64 clip on the bench model; the seed makes each prompt new (no cached replay). */
function clipPrompt(seed: number, steps: number): ApiPrompt {
  const p = workflowPrompt([
    `1.model=${BENCH_MODEL}`,
    '5.iterations=1',
    `6.steps=${steps}`,
    '4.width=64',
    '4.height=64',
    `4.seed=${seed}`,
    `6.seed=${seed}`,
  ]);
  delete p['9']; // the GIF writer: one output file is enough
  return p;
}

/** A client that timestamps the messages it receives. */
async function client(url: string, clientId: string) {
  const ws = new WebSocket(`${url.replace(/^http/, 'ws')}/ws?clientId=${clientId}`);
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  const seen = new Map<string, number>();
  const waiters: (() => void)[] = [];
  let binaryBytes = 0;
  const progressAt: number[] = [];
  ws.on('message', (raw, isBinary) => {
    const now = performance.now();
    if (isBinary) {
      binaryBytes += (raw as Buffer).length;
      return;
    }
    const m = JSON.parse(String(raw)) as {
      type: string;
      data: { prompt_id?: string; node?: unknown; value?: number };
    };
    if (m.data.prompt_id === 'bench-progress' && m.type === 'progress') progressAt[m.data.value!] = now;
    const key = `${m.type}:${m.data.prompt_id}${m.type === 'executing' && m.data.node === null ? ':end' : ''}`;
    if (!seen.has(key)) seen.set(key, now);
    for (const w of waiters.splice(0)) w();
  });
  const at = (key: string) =>
    new Promise<number>((resolve) => {
      const check = () => (seen.has(key) ? resolve(seen.get(key)!) : waiters.push(check));
      check();
    });
  const post = async (prompt: ApiPrompt): Promise<string> => {
    const res = await fetch(`${url}/prompt`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ prompt, client_id: clientId }),
    });
    const body = (await res.json()) as { prompt_id: string };
    if (!res.ok) throw new Error(`POST /prompt: ${res.status} ${JSON.stringify(body).slice(0, 500)}`);
    return body.prompt_id;
  };
  return {
    post,
    started: (id: string) => at(`execution_start:${id}`),
    done: (id: string) => at(`executing:${id}:end`),
    progressAt,
    binaryBytes: () => binaryBytes,
    close: () => ws.close(),
  };
}

type Client = Awaited<ReturnType<typeof client>>;

/** POST /prompt → execution_start, one prompt at a time, ms each. */
async function startLatencies(c: Client, n: number, seed0: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    const id = await c.post(clipPrompt(seed0 + i, 1));
    out.push((await c.started(id)) - t);
    await c.done(id);
  }
  return out;
}

/** Wall time of `n` prompts queued at once until the last ends, as jobs per minute. */
async function jobsPerMinute(c: Client, n: number, seed0: number, steps: number): Promise<number> {
  const t = performance.now();
  const ids: string[] = [];
  for (let i = 0; i < n; i++) ids.push(await c.post(clipPrompt(seed0 + i, steps)));
  await Promise.all(ids.map((id) => c.done(id)));
  return n / ((performance.now() - t) / 60_000);
}

interface RedisCounters {
  commands: number;
  inBytes: number;
  outBytes: number;
}

async function counters(r: Redis): Promise<RedisCounters> {
  const info = await r.info('stats');
  const field = (name: string) => Number(new RegExp(`^${name}:(\\d+)`, 'm').exec(info)?.[1] ?? NaN);
  return {
    commands: field('total_commands_processed'),
    inBytes: field('total_net_input_bytes'),
    outBytes: field('total_net_output_bytes'),
  };
}

const per = (a: RedisCounters, b: RedisCounters, n: number): RedisCounters => ({
  commands: (b.commands - a.commands - 1) / n, // less the INFO itself
  inBytes: (b.inBytes - a.inBytes) / n,
  outBytes: (b.outBytes - a.outBytes) / n,
});

export interface ScaleResult {
  samples: number;
  start: { embedded: number[]; redis: number[] };
  progress: number[];
  perJob: RedisCounters;
  perProgress: RedisCounters;
  idlePerSecond: RedisCounters;
  previewBytesPerJob: number;
  jobsPerMinute: { embedded: number; one: number; two: number };
  jobs: number;
  steps: number;
}

export async function benchScale(env: BenchEnv, log: (m: string) => void): Promise<ScaleResult> {
  const samples = Math.max(20, env.reps * 4);
  const jobs = 6;
  const steps = 6;
  const dirs = (name: string) => [
    '--models-dir',
    env.modelsDir,
    '--output-dir',
    path.join(env.tmp, 'out', name),
    '--data-dir',
    path.join(env.tmp, 'data', name),
  ];
  const listening = /listening on (http:\/\/\S+)/;

  // Both deployments stay up and the rows alternate between them, so the (shared, busy) machine's
  // load hits both alike. The embedded queue: one process.
  const procs: RdflowChild[] = [];
  const redis = await startRedis();
  const stats = new Redis(redis.url);
  try {
    const solo = await rdflow(['serve', '--port', '0', ...dirs('solo')], listening);
    procs.push(solo);
    // Redis: an API server without worker, one worker (a second one joins for the last row).
    const api = await rdflow(
      ['serve', '--port', '0', '--queue', redis.url, '--workers', '0', ...dirs('api')],
      listening,
    );
    procs.push(api);
    const worker = () => rdflow(['worker', '--queue', redis.url, ...dirs('shared')], /running prompts from/);
    procs.push(await worker());
    const soloClient = await client(solo.match[1], 'bench-solo');
    const c = await client(api.match[1], 'bench-redis');
    // Models loaded, caches warm.
    await startLatencies(soloClient, 2, 0);
    await startLatencies(c, 2, 0);

    const embedded: number[] = [];
    const redisStart: number[] = [];
    const before = await counters(stats);
    const bytes0 = c.binaryBytes();
    for (let i = 0; i < samples; i++) {
      embedded.push(...(await startLatencies(soloClient, 1, 100 + i)));
      redisStart.push(...(await startLatencies(c, 1, 100 + i)));
    }
    // The embedded server's prompts touch no Redis: the counters are the Redis prompts' alone.
    const perJob = per(before, await counters(stats), samples);
    const previewBytesPerJob = (c.binaryBytes() - bytes0) / samples;
    log(
      `  start p50 embedded ${percentile(embedded, 50).toFixed(1)} ms, redis ${percentile(redisStart, 50).toFixed(1)} ms; ${perJob.commands.toFixed(0)} commands/job`,
    );

    // Idle: what the waiting worker, its stalled checks and the API server cost Redis.
    const idle0 = await counters(stats);
    await new Promise((r) => setTimeout(r, 5000));
    const idlePerSecond = per(idle0, await counters(stats), 5);

    // Progress events as a worker publishes them (droppable JSON on the client's channel).
    const bus = createEventBus({ url: redis.url });
    await bus.listeners('bench-redis');
    const n = 1000;
    const sentAt: number[] = [];
    const p0 = await counters(stats);
    for (let i = 0; i < n; i++) {
      sentAt[i] = performance.now();
      bus.publish('progress', { value: i, max: n, prompt_id: 'bench-progress', node: '6' }, 'bench-redis', {
        droppable: true,
      });
      await new Promise((r) => setTimeout(r, 1));
    }
    await new Promise((r) => setTimeout(r, 500));
    const perProgress = per(p0, await counters(stats), n);
    const progress = sentAt.flatMap((t, i) => (c.progressAt[i] === undefined ? [] : [c.progressAt[i] - t]));
    await bus.close();

    const rounds = 3;
    const embeddedJpm: number[] = [];
    const oneJpm: number[] = [];
    for (let k = 0; k < rounds; k++) {
      embeddedJpm.push(await jobsPerMinute(soloClient, jobs, 1000 + k * 10, steps));
      oneJpm.push(await jobsPerMinute(c, jobs, 1000 + k * 10, steps));
    }
    procs.push(await worker());
    const twoJpm: number[] = [];
    for (let k = 0; k < rounds; k++) twoJpm.push(await jobsPerMinute(c, jobs, 2000 + k * 10, steps));
    const jpm = { embedded: median(embeddedJpm), one: median(oneJpm), two: median(twoJpm) };
    log(
      `  jobs/min: embedded ${jpm.embedded.toFixed(1)}, 1 worker ${jpm.one.toFixed(1)}, 2 workers ${jpm.two.toFixed(1)}`,
    );
    soloClient.close();
    c.close();
    return {
      samples,
      start: { embedded, redis: redisStart },
      progress,
      perJob,
      perProgress,
      idlePerSecond,
      previewBytesPerJob,
      jobsPerMinute: jpm,
      jobs,
      steps,
    };
  } finally {
    await Promise.all(procs.map((p) => p.close()));
    await stats.quit();
    await redis.stop();
  }
}

const ms = (v: number[], p: number) => percentile(v, p).toFixed(1);
const whole = (v: number) => Math.round(v).toLocaleString('en-US');

export function scaleSection(r: ScaleResult): Section {
  const how = 'bench/scale.ts: node bin/rdflow.js serve [--queue redis://… --workers 0] + rdflow worker';
  return {
    title: '12. Scale-out on Redis',
    headline:
      `start p50 ${ms(r.start.redis, 50)} ms on Redis vs ${ms(r.start.embedded, 50)} ms embedded; ` +
      `${r.jobsPerMinute.one.toFixed(1)} → ${r.jobsPerMinute.two.toFixed(1)} jobs/min with 1 → 2 workers (CPU-bound)`,
    columns: ['what', 'value', 'how to reproduce'],
    rows: [
      [
        '/prompt → execution_start, embedded queue (p50 / p99)',
        `${ms(r.start.embedded, 50)} / ${ms(r.start.embedded, 99)} ms`,
        `${how}; ${r.samples} prompts one at a time`,
      ],
      [
        '/prompt → execution_start, Redis, API server + 1 worker process (p50 / p99)',
        `${ms(r.start.redis, 50)} / ${ms(r.start.redis, 99)} ms`,
        `the same through --queue`,
      ],
      [
        'progress event, worker publish → client socket on the API server (p50 / p99)',
        `${ms(r.progress, 50)} / ${ms(r.progress, 99)} ms`,
        `${r.progress.length} progress messages published on the client's channel, 1 ms apart`,
      ],
      [
        'Redis per job (commands, bytes in, bytes out)',
        `${whole(r.perJob.commands)}, ${whole(r.perJob.inBytes)} B, ${whole(r.perJob.outBytes)} B`,
        'INFO stats around the start-latency prompts (1 clip, 1 step, previews on)',
      ],
      [
        'Redis per progress event (commands, bytes in, bytes out)',
        `${r.perProgress.commands.toFixed(2)}, ${whole(r.perProgress.inBytes)} B, ${whole(r.perProgress.outBytes)} B`,
        'INFO stats around the progress messages',
      ],
      [
        'Redis per idle second (1 API server, 1 worker)',
        `${r.idlePerSecond.commands.toFixed(1)} commands, ${whole(r.idlePerSecond.inBytes)} B in`,
        '5 s with nothing queued',
      ],
      [
        'preview bytes per job (1 clip, 64×64, 1 step)',
        `${whole(r.previewBytesPerJob)} B`,
        'binary frames received',
      ],
      [
        'jobs per minute: embedded / 1 worker / 2 workers',
        `${r.jobsPerMinute.embedded.toFixed(1)} / ${r.jobsPerMinute.one.toFixed(1)} / ${r.jobsPerMinute.two.toFixed(1)}`,
        `${r.jobs} prompts queued at once (1 clip 64×64, ${r.steps} steps, bench model); median of 3 rounds, alternating`,
      ],
    ],
    notes: [
      'CPU-bound here: the two workers run on the same cores as each other, the API server, Redis and the client, so ' +
        'a second worker adds little; on N GPU machines each worker has its own device (docs/scale-out.md).',
      'Start latency: p50/p99 over the prompts, one at a time, alternating between the two deployments (both up). ' +
        'The Redis path adds the worker waking from BZPOPMIN, taking the job and the event crossing Redis to the API ' +
        'server; the embedded server validates, queues and runs on one event loop, the Redis API server only queues.',
    ],
  };
}
