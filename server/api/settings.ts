// What the server is told (ServeOptions) and the settings it runs with: every default resolved in
// one place, and a bind the security policy refuses is an error before anything is opened.
import fs from 'node:fs';
import path from 'node:path';
import type { NodePaths } from '../engine/define.ts';
import type { HubOptions } from './hub.ts';
import { defaultLimits, type Limits } from './limits.ts';
import { repoRoot } from './routes.ts';
import { isLoopbackHost, listenProblem, type AccessPolicy } from './security.ts';
import { defaultWorkflowsDir } from './workflows.ts';

export interface ServeOptions {
  /** Default 8188; 0 picks a free port (returned). */
  port?: number;
  /** Bind address, default 127.0.0.1. A non-loopback address requires an auth token. */
  host?: string;
  outputDir?: string;
  inputDir?: string;
  tempDir?: string;
  modelsDir?: string;
  /** Queue and history store; default `.rdflow/` beside the output dir. */
  dataDir?: string;
  /** Bound of the checkpoints' disk use (default 4 GiB; see server/runs/store.ts). */
  checkpointBytes?: number;
  /** Required for non-loopback binds (else `RDFLOW_AUTH_TOKEN`); enforced whenever set. */
  authToken?: string;
  cacheBytes?: number;
  /** Caps on what one prompt may ask for (frames × resolution × clips). */
  limits?: Partial<Limits>;
  /** Workflow files the editor lists (GET /workflows); default the repo's workflows/. */
  workflowsDir?: string;
  /** Built editor; default dist/client in the repo. */
  clientDir?: string;
  jsonLimitBytes?: number;
  maxUploadBytes?: number;
  /**
   * A prompt that was running when the process died (kill -9, power loss) is queued again first,
   * once; if the server dies under it again it is marked failed. Default true; false marks it
   * failed at once.
   */
  requeueCrashed?: boolean;
  ws?: HubOptions;
  /** Where server messages go; default stderr. */
  log?: (message: string) => void;
}

/** ServeOptions with every default filled in. */
export interface ServerSettings {
  port: number;
  host: string;
  /** The auth token, from the options or RDFLOW_AUTH_TOKEN; absent on an open loopback server. */
  token: string | undefined;
  policy: AccessPolicy;
  paths: NodePaths;
  dataDir: string;
  checkpointBytes: number | undefined;
  cacheBytes: number | undefined;
  limits: Limits;
  workflowsDir: string;
  clientDir: string;
  jsonLimitBytes: number;
  maxUploadBytes: number;
  requeueCrashed: boolean | undefined;
  ws: HubOptions | undefined;
  log: (message: string) => void;
  /** package.json's version, for /system_stats. */
  version: string;
}

function readVersion(): string {
  try {
    const pkg = JSON.parse(fs.readFileSync(path.join(repoRoot, 'package.json'), 'utf8')) as {
      version?: string;
    };
    return pkg.version ?? '0.0.0';
  } catch {
    return '0.0.0';
  }
}

/**
 * The settings `opts` mean. Folders default beside the output folder (input/, temp/, .rdflow/)
 * and are resolved to absolute paths; nothing is created yet. Throws when the bind needs a token
 * it lacks.
 */
export function resolveSettings(opts: ServeOptions): ServerSettings {
  const host = opts.host ?? '127.0.0.1';
  const token = opts.authToken ?? (process.env.RDFLOW_AUTH_TOKEN || undefined);
  const problem = listenProblem(host, token);
  if (problem) throw new Error(problem);
  const output = path.resolve(opts.outputDir ?? 'output');
  return {
    port: opts.port ?? 8188,
    host,
    token,
    policy: { token, loopback: isLoopbackHost(host) },
    paths: {
      output,
      input: path.resolve(opts.inputDir ?? path.join(path.dirname(output), 'input')),
      temp: path.resolve(opts.tempDir ?? path.join(path.dirname(output), 'temp')),
      models: path.resolve(opts.modelsDir ?? 'models'),
    },
    dataDir: path.resolve(opts.dataDir ?? path.join(path.dirname(output), '.rdflow')),
    checkpointBytes: opts.checkpointBytes,
    cacheBytes: opts.cacheBytes,
    limits: { ...defaultLimits, ...opts.limits },
    workflowsDir: path.resolve(opts.workflowsDir ?? defaultWorkflowsDir),
    clientDir: path.resolve(opts.clientDir ?? path.join(repoRoot, 'dist', 'client')),
    jsonLimitBytes: opts.jsonLimitBytes ?? 10 * 1024 * 1024,
    maxUploadBytes: opts.maxUploadBytes ?? 100 * 1024 * 1024,
    requeueCrashed: opts.requeueCrashed,
    ws: opts.ws,
    log: opts.log ?? ((m: string) => process.stderr.write(`[rdflow] ${m}\n`)),
    version: readVersion(),
  };
}
