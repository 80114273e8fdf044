// A worker process for the scale-out tests: the real Redis queue, bus and interrupts around a fake
// job body that "renders" `steps` clips of `stepMs` each, saving a checkpoint after every clip in
// the shared data folder (as rdflow's per-clip checkpoints do) and continuing from it when the
// job comes back from a dead worker. Writes one output file per finished prompt (temp + rename)
// and a line per event to DATA/events.log, which the tests read.
//   node --import tsx tests/scale/fake-worker.ts   (config as JSON in RDFLOW_FAKE_WORKER)
// extra_data: {client_id?, steps?, fail?: 'worker-once' | 'invalid'}
import fs from 'node:fs';
import path from 'node:path';
import { createEventBus } from '../../server/api/redis/bus.ts';
import { createRedisQueue } from '../../server/api/redis/queue.ts';
import type { QueueItem } from '../../server/api/queue.ts';

interface Config {
  url: string;
  name: string;
  dataDir: string;
  worker: string;
  stepMs: number;
  lockDuration: number;
  stalledInterval: number;
  backoffMs: number;
}

const cfg = JSON.parse(process.env.RDFLOW_FAKE_WORKER ?? '{}') as Config;
const log = (line: string) =>
  fs.appendFileSync(path.join(cfg.dataDir, 'events.log'), `${cfg.worker} ${line}\n`);
const queue = createRedisQueue({
  url: cfg.url,
  name: cfg.name,
  backoffMs: cfg.backoffMs,
  worker: {
    lockDuration: cfg.lockDuration,
    stalledInterval: cfg.stalledInterval,
    blockSeconds: 1,
    log: (m) => log(`log ${m}`),
  },
});
const bus = createEventBus({ url: cfg.url, name: cfg.name });
let current: { promptId: string; stop: AbortController } | undefined;
await bus.onInterrupt((id) => {
  if (current && (id === undefined || id === current.promptId)) current.stop.abort();
});
queue.onGaveUp((item, reason) => log(`gave-up ${item.promptId} ${reason}`));

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => (clearTimeout(t), resolve()), { once: true });
  });

async function runOne(item: QueueItem): Promise<void> {
  const id = item.promptId;
  const clientId = typeof item.extraData.client_id === 'string' ? item.extraData.client_id : null;
  const steps = typeof item.extraData.steps === 'number' ? item.extraData.steps : 5;
  const ckpt = path.join(cfg.dataDir, `ckpt-${id}.json`);
  const resume = (item.restarts ?? 0) > 0 && fs.existsSync(ckpt);
  const from = resume ? (JSON.parse(fs.readFileSync(ckpt, 'utf8')) as { done: number }).done : 0;
  log(`start ${id} from ${from} restarts ${item.restarts ?? 0}`);
  if (item.extraData.fail === 'invalid') {
    log(`fail ${id} ${await queue.fail(id, new Error('model folder vanished'), { unrecoverable: true })}`);
    return;
  }
  if (item.extraData.fail === 'worker-once' && (item.restarts ?? 0) === 0) {
    log(`fail ${id} ${await queue.fail(id, new Error('out of memory'))}`);
    return;
  }
  const stop = new AbortController();
  const lost = queue.lockSignal(id)!;
  current = { promptId: id, stop };
  bus.publish('execution_start', { prompt_id: id }, clientId);
  for (let step = from; step < steps; step++) {
    await sleep(cfg.stepMs, AbortSignal.any([stop.signal, lost]));
    if (lost.aborted) {
      log(`lost ${id}`);
      current = undefined;
      return;
    }
    if (stop.signal.aborted) {
      log(`interrupted ${id}`);
      bus.publish('execution_interrupted', { prompt_id: id }, null);
      bus.publish('executing', { node: null, prompt_id: id }, clientId);
      current = undefined;
      await queue.complete(id);
      return;
    }
    fs.writeFileSync(ckpt, JSON.stringify({ done: step + 1 }));
    if (step === from) queue.reportNode(id, 'clip');
    log(`step ${id} ${step + 1}`);
    bus.publish('progress', { value: step + 1, max: steps, prompt_id: id }, clientId, { droppable: true });
    bus.publishBinary(Buffer.from(`preview ${id} ${step + 1}`), clientId);
  }
  const out = path.join(cfg.dataDir, 'out', `${id}.txt`);
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(`${out}.tmp-${process.pid}`, `${id} ${steps} clips\n`);
  fs.renameSync(`${out}.tmp-${process.pid}`, out);
  current = undefined;
  await queue.complete(id);
  log(`done ${id}`);
  bus.publish('executing', { node: null, prompt_id: id }, clientId);
}

let stopping = false;
process.on('SIGTERM', () => {
  stopping = true;
  current?.stop.abort();
});
log('ready');
while (!stopping) {
  const item = await queue.next();
  if (item) await runOne(item);
}
await queue.close();
await bus.close();
log('exit');
