// The engine: validate, plan and run prompts over a set of node types, with caches kept between runs.
//
// What hosts and node authors can rely on:
// - Only what output nodes need runs, each node once (per loop iteration), dependencies first.
// - A node's outputs are cached under a signature of (class, literal inputs, upstream signatures,
//   fingerprint()); an unchanged node is not run again while its entry is cached. Outputs of
//   nodes outside loops live in memory (LRU by bytes, `cacheBytes`); outputs of loop-body nodes go
//   to a disk tier (v8-serialized under paths.temp, LRU by bytes, `spillBytes`): values that do
//   not serialize faithfully (class instances, functions) are simply not cached there.
// - In a loop body, signatures chain through the iteration index and the carried values'
//   signatures, so a re-run knows what is unchanged without loading anything. Output nodes in a
//   body run every iteration (streaming); they are skipped only when their whole loop is unchanged.
// - Output nodes' results are cached only when the run succeeds (their files are finished by
//   onRunEnd callbacks).
// - A loop-body value is valid until the end of its iteration: the engine may hand its buffers back
//   to the node that made it for the next iteration (RunContext.recycled; VAEDecode decodes into
//   them). A node that keeps an input beyond its own run (in ctx.state, say) must copy it.
// - With RunOptions.checkpoints, each finished iteration of a top-level loop is saved, and a saved
//   loop continues where it stopped (server/engine/resume.ts).
import fs from 'node:fs';
import type { AnyNodeDef } from './define.ts';
import { DEFAULT_CACHE_BYTES, DEFAULT_SPILL_BYTES, type CacheStats } from './cache.ts';
import { executePlan } from './execute.ts';
import { createRegistry } from './registry.ts';
import type { Engine, EngineOptions } from './types.ts';
import { validatePrompt } from './validate.ts';
import { createValueStore } from './value-store.ts';

export { toApiPrompt, widgetsFromDef, WorkflowFormatError, isCanvasWorkflow } from './workflow.ts';
export { canvasToApi, objectInfoLookup, widgetsFromObjectInfo } from '../protocol/canvas.ts';
export type {
  CanvasWorkflow,
  NodeWidgets,
  WidgetDesc,
  WidgetLookup,
  ObjectInfoNode,
} from '../protocol/canvas.ts';
export { createRegistry, nodeObjectInfo, inputConfig } from './registry.ts';
export type { Registry, ObjectInfoEntry } from './registry.ts';
export type { CacheStats } from './cache.ts';
export { ResumeRefusedError } from './resume.ts';
export type { LoopCheckpoints, SavedLoop, IterationState } from './resume.ts';

export interface EngineExtras {
  /** Bytes and entries held by the memory cache and the disk spill tier. */
  cacheStats(): CacheStats;
  /** Loop-body node outputs held in memory right now (while a loop runs; 0 between runs). */
  heldBodyValues(): number;
  /** Node types by class name. */
  getNode(classType: string): AnyNodeDef | undefined;
  /** Drops caches and deletes the spill folder; the engine stays usable. */
  close(): void;
}

// Spill folders are deleted when the process exits, whatever engines were left open.
const liveSpills = new Set<() => void>();
process.once('exit', () => {
  for (const clear of liveSpills) clear();
});

export function createEngine(opts: EngineOptions & { spillBytes?: number }): Engine & EngineExtras {
  const registry = createRegistry(opts.nodes);
  const env = { paths: opts.paths };
  const limits = opts.limits ?? {};
  const store = createValueStore({
    tempRoot: opts.paths.temp,
    memoryMaxBytes: opts.cacheBytes ?? DEFAULT_CACHE_BYTES,
    spillMaxBytes: opts.spillBytes ?? DEFAULT_SPILL_BYTES,
  });
  // Runs are serialized: caches and node state belong to one run at a time.
  let queue: Promise<unknown> = Promise.resolve();
  const cleanup = () => store.evict();
  liveSpills.add(cleanup);

  return {
    async validate(prompt) {
      return (await validatePrompt(prompt, registry, env, limits)).result;
    },
    run(prompt, options) {
      const job = queue.then(async (): Promise<Awaited<ReturnType<Engine['run']>>> => {
        try {
          // Validate → plan → execute.
          const validated = await validatePrompt(prompt, registry, env, limits);
          if (!validated.result.ok) return { status: 'invalid', validation: validated.result };
          const { graph, plan } = validated;
          // Validation planned it and reported every structural problem: a valid prompt has a plan.
          if (!graph || !plan) throw new Error('A valid prompt could not be planned');
          fs.mkdirSync(opts.paths.temp, { recursive: true });
          return await executePlan(
            {
              graph,
              plan,
              registry,
              paths: opts.paths,
              services: opts.services ?? {},
              store,
              limits,
              recheck: validated.recheck ?? new Set(),
              checkpoints: options.checkpoints,
            },
            {
              promptId: options.promptId,
              signal: options.signal ?? new AbortController().signal,
              previews: options.previews,
              emit: (event) => {
                try {
                  options.onEvent?.(event);
                } catch {
                  // A listener's bug must not break the run.
                }
              },
            },
          );
        } catch (err) {
          // Only an engine bug gets here (executePlan reports node failures itself); run() never throws.
          return {
            status: 'error',
            outputs: {},
            nodeId: '',
            message: err instanceof Error ? err.message : String(err),
          };
        }
      });
      queue = job.catch(() => undefined);
      return job;
    },
    clearCache: () => store.evict(),
    objectInfo() {
      return registry.objectInfo(env);
    },
    cacheStats: () => store.stats(),
    heldBodyValues: () => store.heldBodyValues(),
    getNode: (classType) => registry.get(classType),
    close() {
      store.evict();
      liveSpills.delete(cleanup);
    },
  };
}
