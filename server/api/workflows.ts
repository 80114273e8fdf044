// The workflow files the editor's "Workflows…" list offers: the `.json` files directly in one
// folder (the repo's workflows/ unless told otherwise). Read-only; names are confined to that
// folder by paths.ts (no `..`, separators, NUL, encoded sequences, or symlinks out).
import fs from 'node:fs';
import path from 'node:path';
import { isCanvasWorkflow } from '../engine/index.ts';
import type { WorkflowEntry } from '../protocol/index.ts';
import { PathError, resolveExisting } from './paths.ts';

export type { WorkflowEntry } from '../protocol/index.ts';

/** A plain `*.json` name that is not hidden; anything else is not a workflow of this folder. */
const WORKFLOW_NAME = /^[^./\\][^/\\]*\.json$/;

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The format of parsed workflow JSON, or undefined when it is neither. */
export function workflowFormat(json: unknown): 'api' | 'canvas' | undefined {
  if (isCanvasWorkflow(json)) return 'canvas';
  if (!isObject(json)) return undefined;
  const values = Object.values(json);
  if (values.length > 0 && values.every((v) => isObject(v) && typeof v.class_type === 'string')) return 'api';
  return undefined;
}

/**
 * The real path of workflow `name` in `dir`. Throws PathError: 400 for a name that is not a plain
 * `*.json` file name (or is unsafe), 404 when it is missing, not a file, or resolves outside `dir`.
 */
export async function resolveWorkflow(dir: string, name: string): Promise<string> {
  if (!WORKFLOW_NAME.test(name)) throw new PathError(400, 'A workflow name is a plain *.json file name.');
  try {
    return await resolveExisting(dir, '', name);
  } catch (err) {
    // A symlink out of the folder is, for this route, simply not one of its workflows.
    if (err instanceof PathError && err.status === 403) throw new PathError(404, 'No such workflow.');
    throw err;
  }
}

/**
 * The folder's workflows, sorted by name. Files that are not valid JSON workflows, or that
 * resolve outside the folder, are left out (the list only offers what would open).
 */
export async function listWorkflows(dir: string): Promise<WorkflowEntry[]> {
  let names: string[];
  try {
    names = await fs.promises.readdir(dir);
  } catch {
    return [];
  }
  const entries: WorkflowEntry[] = [];
  for (const name of names.filter((n) => WORKFLOW_NAME.test(n)).sort()) {
    let json: unknown;
    try {
      json = JSON.parse(await fs.promises.readFile(await resolveWorkflow(dir, name), 'utf8'));
    } catch {
      continue;
    }
    const format = workflowFormat(json);
    if (format === undefined) continue;
    const extra = isObject(json) && isObject(json.extra) ? json.extra : undefined;
    const title = typeof extra?.title === 'string' ? extra.title : undefined;
    entries.push({ name, format, ...(title !== undefined ? { title } : {}) });
  }
  return entries;
}

/** The repo's shipped workflows/ folder (resolved from this file, not the cwd). */
export const defaultWorkflowsDir = path.resolve(import.meta.dirname, '..', '..', 'workflows');
