// `npm run bench`: runs every benchmark of issue 8 in turn on this machine and rewrites
// BENCHMARKS.md. Options: --reps N (default 5), --only 1,4 (a subset; BENCHMARKS.md is then not
// written unless --write), --out FILE.
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { prepare } from './config.ts';
import { benchConvert, convertSections } from './convert.ts';
import { benchCreep, creepSection } from './creep.ts';
import { benchDemo, demoSection } from './demo.ts';
import { benchEngineOverhead, engineOverheadSection } from './engine-overhead.ts';
import { benchGuidance, guidanceSection } from './guidance.ts';
import { benchIncremental, incrementalSection } from './incremental.ts';
import { benchMemory, memorySection } from './memory.ts';
import { REPO } from './proc.ts';
import { benchResume, resumeSection } from './resume.ts';
import { machineInfo, renderReport, type Section } from './report.ts';
import { benchScale, scaleSection } from './scale.ts';
import { benchServerPing, serverPingSection } from './server-ping.ts';
import { benchServerVsCli, serverVsCliSection } from './server-vs-cli.ts';

const { values } = parseArgs({
  options: {
    reps: { type: 'string', default: '5' },
    only: { type: 'string' },
    write: { type: 'boolean', default: false },
    out: { type: 'string', default: path.join(REPO, 'BENCHMARKS.md') },
  },
});
const reps = Number(values.reps);
if (!Number.isInteger(reps) || reps < 1)
  throw new Error(`--reps ${values.reps}: expected a positive integer`);
const only = values.only?.split(',').map(Number);
const wanted = (n: number) => !only || only.includes(n);

const started = performance.now();
const date = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
const machine = machineInfo();
const log = (m: string) => console.log(m);
const elapsed = () => `${((performance.now() - started) / 1000).toFixed(0)} s`;

const env = await prepare(reps);
log(`bench: ${reps} repetitions, scratch ${env.tmp}`);
const sections: Section[] = [];
// The demo e2e and creep rows are the longest; fewer repetitions there keep the total under 10 minutes.
const heavyReps = Math.min(reps, 3);
const steps: [number, string, () => Promise<Section | Section[]>][] = [
  [1, 'engine overhead', async () => engineOverheadSection(await benchEngineOverhead(env, log))],
  [
    2,
    'memory flat in length',
    async () => {
      const scheduler = JSON.parse(
        readFileSync(path.join(env.modelsDir, 'demo', 'scheduler', 'scheduler_config.json'), 'utf8'),
      ) as Record<string, unknown>;
      return memorySection(await benchMemory(env, scheduler, log));
    },
  ],
  [3, 'incremental re-run', async () => incrementalSection(await benchIncremental(env, log))],
  [4, 'guidance batching', async () => guidanceSection(await benchGuidance(env, log))],
  [5, 'server responsiveness', async () => serverPingSection(await benchServerPing(env, log))],
  [6, 'demo end to end', async () => demoSection(await benchDemo(env, heavyReps, log))],
  [7, 'no creep across runs', async () => creepSection(await benchCreep(env, heavyReps, log))],
  [
    8,
    'converted UNet throughput and full-size conversion',
    async () => convertSections(await benchConvert(env, log)),
  ],
  // Step 8 writes sections 8 and 9; the step numbers (for --only) follow the section titles.
  [
    10,
    'server vs CLI',
    async () => serverVsCliSection(await benchServerVsCli({ ...env, reps: heavyReps }, log)),
  ],
  [11, 'resume checkpoints and long videos', async () => resumeSection(await benchResume(env, log))],
  [12, 'scale-out on Redis', async () => scaleSection(await benchScale(env, log))],
];
try {
  for (const [n, name, run] of steps) {
    if (!wanted(n)) continue;
    log(`[${elapsed()}] ${n}. ${name}`);
    const got = await run();
    sections.push(...(Array.isArray(got) ? got : [got]));
  }
} finally {
  rmSync(env.tmp, { recursive: true, force: true });
}
const totalMs = performance.now() - started;
log(`total ${elapsed()}`);
const markdown = renderReport({ machine, date, reps, totalMs, sections, problems: [] });
if (!only || values.write) {
  writeFileSync(values.out, markdown);
  log(`wrote ${values.out}`);
} else {
  log(markdown);
}
process.exit(0);
