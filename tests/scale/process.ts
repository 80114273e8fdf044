// An API server or a worker of a scale-out deployment as its own process, assembled as
// `rdflow serve --queue` / `rdflow worker` assemble theirs, over the server tests' nodes plus the
// shipped ones (the loop, for per-clip checkpoints) and ROOT's shared folders:
//   node --import tsx tests/scale/process.ts serve ROOT REDIS_URL [--workers 0]   prints READY <port>
//   node --import tsx tests/scale/process.ts worker ROOT REDIS_URL                prints READY
// Timing from the environment as the CLI reads it: RDFLOW_QUEUE_LOCK_MS, RDFLOW_QUEUE_STALLED_MS,
// RDFLOW_QUEUE_BACKOFF_MS, RDFLOW_QUEUE_ATTEMPTS. Its log goes to stderr. SIGTERM stops it gracefully.
import path from 'node:path';
import { allNodes } from '../../nodes/index.ts';
import { startServer, startWorker } from '../../server/api/index.ts';
import { serverTestNodes } from '../server/fixtures/nodes.ts';

const [mode, root, url] = process.argv.slice(2);
if ((mode !== 'serve' && mode !== 'worker') || !root || !url) {
  throw new Error('usage: process.ts serve|worker ROOT REDIS_URL [--workers 0]');
}
const env = (name: string) => (process.env[name] ? Number(process.env[name]) : undefined);
const sharedQueue = {
  url,
  attempts: env('RDFLOW_QUEUE_ATTEMPTS'),
  backoffMs: env('RDFLOW_QUEUE_BACKOFF_MS'),
  timing: { lockDuration: env('RDFLOW_QUEUE_LOCK_MS'), stalledInterval: env('RDFLOW_QUEUE_STALLED_MS') },
};
const folders = {
  outputDir: path.join(root, 'output'),
  inputDir: path.join(root, 'input'),
  modelsDir: path.join(root, 'models'),
  dataDir: path.join(root, 'data'),
  tempDir: path.join(root, 'data', 'temp'),
  // The test nodes add TestSlow & co.; the engine's loop nodes come with both sets, once.
  nodes: [...allNodes, ...serverTestNodes().filter((n) => !allNodes.some((a) => a.name === n.name))],
  log: (m: string) => process.stderr.write(`[${mode} ${process.pid}] ${m}\n`),
};
let close: () => Promise<void>;
if (mode === 'serve') {
  const worker = !(
    process.argv.includes('--workers') && process.argv[process.argv.indexOf('--workers') + 1] === '0'
  );
  const server = await startServer({ port: 0, ...folders, sharedQueue: { ...sharedQueue, worker } });
  close = server.close;
  process.stdout.write(`READY ${server.port}\n`);
} else {
  const worker = await startWorker({ ...folders, sharedQueue });
  close = worker.close;
  process.stdout.write('READY\n');
}
process.once('SIGTERM', () => {
  void close().then(() => process.exit(0));
});
