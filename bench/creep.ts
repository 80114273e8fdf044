// Benchmark 7, no creep across runs: the real server (`rdflow serve`, its own process) gets 20
// prompts one after another, alternating two prompts (so the second and later runs of each are
// served from the engine's cache); its VmRSS is read from /proc after every prompt ends.
import path from 'node:path';
import { workflowPrompt, type BenchEnv } from './config.ts';
import { connect } from './api-client.ts';
import { startServerChild } from './proc.ts';
import type { Section } from './report.ts';
import { fmtSummary, mapSummary, mib, summarize, type Summary } from './stats.ts';

export const PROMPTS = 20;
export const CREEP_GOAL = 1.1;
/** The shipped workflow on the demo model (256×256, N = 8), 3 clips of 10 steps. */
export const CREEP_SETS: readonly string[] = ['5.iterations=3', '6.steps=10'];
export const CREEP_TEXTS = ['a red ball moving right', 'a blue square bouncing'] as const;

export interface CreepResult {
  /** RSS after prompt 1, 2 and 20, bytes, one value per server. */
  after1: Summary;
  after2: Summary;
  after20: Summary;
  /** after20 / after1 per server. */
  ratio: Summary;
  /** after20 / after2 per server: growth once both prompts are cached. */
  ratioFrom2: Summary;
  /** Median RSS after each prompt (MiB), over servers. */
  curve: number[];
  servers: number;
}

export async function benchCreep(
  env: BenchEnv,
  servers: number,
  log: (m: string) => void,
): Promise<CreepResult> {
  const runs: number[][] = [];
  for (let s = 0; s < servers; s++) {
    const server = await startServerChild({
      modelsDir: env.modelsDir,
      outputDir: path.join(env.tmp, 'out', `creep-${s}`),
    });
    const client = await connect(server.url);
    const rss: number[] = [];
    try {
      for (let i = 0; i < PROMPTS; i++) {
        const text = CREEP_TEXTS[i % 2];
        const id = await client.queue(workflowPrompt([...CREEP_SETS, `2.text=${text}`]));
        await client.done(id);
        rss.push(server.rss());
      }
    } finally {
      client.close();
      await server.close();
    }
    runs.push(rss);
    log(
      `  server ${s + 1}/${servers}: ${mib(rss[0]).toFixed(0)} → ${mib(rss[1]).toFixed(0)} → ${mib(rss[PROMPTS - 1]).toFixed(0)} MiB`,
    );
  }
  const at = (i: number) => runs.map((r) => r[i]);
  return {
    after1: summarize(at(0)),
    after2: summarize(at(1)),
    after20: summarize(at(PROMPTS - 1)),
    ratio: summarize(runs.map((r) => r[PROMPTS - 1] / r[0])),
    ratioFrom2: summarize(runs.map((r) => r[PROMPTS - 1] / r[1])),
    curve: Array.from({ length: PROMPTS }, (_, i) => mib(summarize(at(i)).median)),
    servers,
  };
}

export function creepSection(r: CreepResult): Section {
  const met = r.ratio.median <= CREEP_GOAL;
  const m = (s: Summary) => fmtSummary(mapSummary(s, mib), 1);
  const how = `POST /prompt ×${PROMPTS}: workflows/vidrd-long-video.json --set ${CREEP_SETS.join(' --set ')}, 2.text alternating`;
  const problems = met
    ? []
    : [
        `Server RSS creeps (server, engine owners): ${mib(r.after1.median).toFixed(0)} MiB after prompt 1, ` +
          `${mib(r.after2.median).toFixed(0)} after 2, ${mib(r.after20.median).toFixed(0)} after ${PROMPTS} ` +
          `(${r.ratio.median.toFixed(3)}×; ${r.ratioFrom2.median.toFixed(3)}× from prompt 2, when both prompts are cached).`,
      ];
  return {
    title: '7. No creep across runs',
    problems,
    goal: `server RSS after prompt ${PROMPTS} / after prompt 1 ≤ ${CREEP_GOAL.toFixed(2)}`,
    met,
    headline: `${fmtSummary(r.ratio, 3, '×')} (after 20 vs after 1); ${fmtSummary(r.ratioFrom2, 3, '×')} vs after 2`,
    columns: ['server RSS (VmRSS)', 'MiB', 'ratio', 'how to reproduce'],
    rows: [
      ['after prompt 1', m(r.after1), '1', `${how}; read /proc/PID/status after each ends`],
      ['after prompt 2 (the other prompt: its own cache entries)', m(r.after2), '', how],
      [`after prompt ${PROMPTS}`, m(r.after20), fmtSummary(r.ratio, 3, '×'), how],
      [`after prompt ${PROMPTS} vs after prompt 2`, '', fmtSummary(r.ratioFrom2, 3, '×'), how],
    ],
    notes: [
      `${r.servers} fresh server processes, ${PROMPTS} prompts each, queued one at a time (the next once \`executing {node: null}\` ` +
        `of the previous arrived). Prompts alternate "${CREEP_TEXTS[0]}" / "${CREEP_TEXTS[1]}", so prompts 3–${PROMPTS} are ` +
        'cache hits. Demo model at the shipped 256×256, N = 8, with 3 clips of 10 steps.',
      `Median RSS after each prompt, MiB: ${r.curve.map((v) => v.toFixed(0)).join(', ')}.`,
      met
        ? `Goal ≤ ${CREEP_GOAL.toFixed(2)}: met.`
        : `Goal ≤ ${CREEP_GOAL.toFixed(2)}: **missed** by ${((r.ratio.median / CREEP_GOAL - 1) * 100).toFixed(1)} %. See "Problems found".`,
    ],
  };
}
