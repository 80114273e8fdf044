// The command line's side of resume: `rdflow run --resume / --extend N` pick the checkpoint to
// continue, `rdflow runs` lists and clears checkpoints. Kept apart from server/cli.ts, which only
// calls in here.
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { AnyNodeDef, NodePaths } from '../engine/define.ts';
import type { ApiPrompt } from '../engine/types.ts';
import type { NodeKinds } from './key.ts';
import { CheckpointStore, DEFAULT_CHECKPOINT_BYTES, formatBytes, parseBytes, type RunInfo } from './store.ts';

export class ResumeUsageError extends Error {
  override name = 'UsageError';
}

export function nodeKinds(nodes: readonly AnyNodeDef[]): NodeKinds {
  const byName = new Map(nodes.map((n) => [n.name, n]));
  return {
    isOutput: (c) => byName.get(c)?.outputNode === true,
    isLoopStart: (c) => byName.get(c)?.role === 'loop-start',
  };
}

/** The CLI's data folder for checkpoints: `.rdflow/runs` beside the output folder. */
export function runsDir(paths: Pick<NodePaths, 'output'>): string {
  return path.join(path.dirname(paths.output), '.rdflow', 'runs');
}

/** `--checkpoint-limit 2G` → bytes (default DEFAULT_CHECKPOINT_BYTES). */
export function checkpointLimit(text: string | undefined): number {
  if (text === undefined) return DEFAULT_CHECKPOINT_BYTES;
  const n = parseBytes(text);
  if (n === undefined || n <= 0) {
    throw new ResumeUsageError(`--checkpoint-limit ${text}: expected a size such as 500M or 4G`);
  }
  return n;
}

function progress(r: RunInfo): string {
  const loops = Object.values(r.loops);
  if (loops.length === 0) return 'no clip yet';
  return loops.map((l) => `clip ${l.done}/${l.total}`).join(', ');
}

/**
 * Which checkpoint `--resume` / `--extend N` continue: this prompt's own, else the newest made from
 * the same workflow file (the engine then checks that the clips made are still the same). With
 * extend, the prompt's loops get N more iterations than the finished run had.
 */
export function chooseResume(
  store: CheckpointStore,
  prompt: ApiPrompt,
  source: string,
  extend: string | undefined,
): { prompt: ApiPrompt; from: string; info: RunInfo } {
  const info = store.get(store.key(prompt)) ?? store.latestFrom(source);
  if (!info) {
    throw new ResumeUsageError(
      `nothing to ${extend !== undefined ? 'extend' : 'resume'} for ${source}: no checkpoint in ${store.dir} ` +
        '(`rdflow runs` lists them)',
    );
  }
  if (info.status === 'running') {
    throw new ResumeUsageError(`checkpoint ${info.key} belongs to a run that is still running`);
  }
  if (extend === undefined) return { prompt, from: info.key, info };
  const n = Number(extend);
  if (!Number.isInteger(n) || n < 1)
    throw new ResumeUsageError(`--extend ${extend}: expected a whole number ≥ 1`);
  if (info.status !== 'finished') {
    throw new ResumeUsageError(
      `checkpoint ${info.key} has not finished (${progress(info)}): continue it with --resume first`,
    );
  }
  const out = structuredClone(prompt);
  for (const [loopId, l] of Object.entries(info.loops)) {
    const node = out[loopId];
    if (!node) throw new ResumeUsageError(`the workflow has no loop node ${loopId} to extend`);
    node.inputs.iterations = l.done + n;
  }
  return { prompt: out, from: info.key, info };
}

/** `rdflow runs [--clear [KEY|finished|all]] [--json] [--out DIR]`. */
export function cmdRuns(
  args: string[],
  cwd: string,
  out: { write(text: string): unknown },
  outputDir: (dir: string | undefined) => string,
): number {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      clear: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      out: { type: 'string' },
      'checkpoint-limit': { type: 'string' },
    },
  });
  const dir = runsDir({ output: outputDir(values.out) });
  const store = new CheckpointStore(
    dir,
    { isOutput: () => false, isLoopStart: () => false },
    checkpointLimit(values['checkpoint-limit']),
  );
  if (values.clear) {
    const what = positionals[0] ?? 'all';
    const removed =
      what === 'all'
        ? store.clear()
        : what === 'finished'
          ? store.clear('finished')
          : store.remove(what)
            ? [what]
            : [];
    if (what !== 'all' && what !== 'finished' && removed.length === 0) {
      throw new ResumeUsageError(`no checkpoint ${what} in ${dir}`);
    }
    out.write(`Removed ${removed.length} checkpoint${removed.length === 1 ? '' : 's'}.\n`);
    return 0;
  }
  if (positionals.length > 0) throw new ResumeUsageError(`rdflow runs: unexpected ${positionals.join(' ')}`);
  const runs = store.list();
  const total = runs.reduce((n, r) => n + r.bytes, 0);
  if (values.json) {
    out.write(
      `${JSON.stringify(
        {
          dir,
          totalBytes: total,
          limitBytes: store.maxBytes,
          runs: runs.map(({ prompt: _p, ...r }) => r),
        },
        null,
        2,
      )}\n`,
    );
    return 0;
  }
  if (runs.length === 0) out.write(`No checkpoints in ${dir}.\n`);
  for (const r of runs) {
    const when = new Date(r.updatedAt).toISOString().replace('T', ' ').slice(0, 16);
    const what = r.status === 'finished' ? 'finished, extendable' : r.status;
    out.write(
      `${r.key}  ${progress(r).padEnd(12)}  ${what.padEnd(20)} ${formatBytes(r.bytes).padStart(9)}  ${when}  ${
        r.source ? path.relative(cwd, r.source) || r.source : ''
      }\n`,
    );
  }
  out.write(
    `Disk use: ${formatBytes(total)} of ${formatBytes(store.maxBytes)} (--checkpoint-limit); ` +
      'clear with `rdflow runs --clear [KEY|finished]`.\n',
  );
  return 0;
}
