// A RunContext for calling one node's run function directly, recording what the node reports.
import { mkdtempSync, rmSync } from 'node:fs';
import { mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type {
  LoopPosition,
  NodePaths,
  NodeServices,
  RunContext,
  RunOutcome,
  UiOutput,
} from '../../server/engine/define.ts';

/** The repository root (the shared spec vectors lie beside it, in ../shared/vectors). */
export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

export interface RecordingContext {
  ctx: RunContext;
  progress: [number, number][];
  previews: { format: 'jpeg' | 'png'; data: Uint8Array }[];
  uis: UiOutput[];
  /** Calls the onRunEnd callbacks as the engine does when the run ends. */
  endRun(outcome: RunOutcome): Promise<void>;
  /** A context for the next loop iteration of the same run (same state and callbacks). */
  next(loop?: LoopPosition): RecordingContext;
}

export function makeContext(
  paths: NodePaths,
  opts: { loop?: LoopPosition; signal?: AbortSignal; classType?: string; services?: NodeServices } = {},
): RecordingContext {
  const state: Record<string, unknown> = {};
  const endCallbacks: ((outcome: RunOutcome) => void | Promise<void>)[] = [];
  const progress: [number, number][] = [];
  const previews: { format: 'jpeg' | 'png'; data: Uint8Array }[] = [];
  const uis: UiOutput[] = [];
  const build = (loop: LoopPosition | undefined): RecordingContext => {
    const ctx: RunContext = {
      nodeId: '1',
      classType: opts.classType ?? 'Test',
      signal: opts.signal ?? new AbortController().signal,
      paths,
      services: opts.services ?? {},
      loop,
      progress: (value, max) => progress.push([value, max]),
      preview: (image) => previews.push(image),
      emitUi: (ui) => uis.push(ui),
      state,
      onRunEnd: (cb) => endCallbacks.push(cb),
    };
    return {
      ctx,
      progress,
      previews,
      uis,
      async endRun(outcome) {
        for (const cb of endCallbacks.splice(0)) await cb(outcome);
      },
      next: (l) => build(l),
    };
  };
  return build(opts.loop);
}

/** Fresh output/input/temp/models folders under one temp dir; `cleanup` removes them. */
export function makePaths(prefix = 'rdflow-nodes-'): NodePaths & { root: string; cleanup(): void } {
  const root = mkdtempSync(path.join(os.tmpdir(), prefix));
  const p = {
    output: path.join(root, 'output'),
    input: path.join(root, 'input'),
    temp: path.join(root, 'temp'),
    models: path.join(root, 'models'),
  };
  for (const d of Object.values(p)) mkdirSync(d, { recursive: true });
  return { ...p, root, cleanup: () => rmSync(root, { recursive: true, force: true }) };
}
