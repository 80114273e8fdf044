// The `rdflow` command: run a workflow file, list node types, or start the server.
// `runCli` takes its streams and node list as arguments so tests can run it in-process.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs as parseNodeArgs, type ParseArgsConfig } from 'node:util';
import { makeDirs } from './runtime/video/paths.ts';
import { readModelInfo } from './runtime/families/info.ts';
import { checkPromptTexts, type PromptProblem } from '../client/src/prompt-check.ts';
import type { AnyNodeDef, NodePaths, UiOutput } from './engine/define.ts';
import { createEngine, toApiPrompt, WorkflowFormatError } from './engine/index.ts';
import type { ApiPrompt, EngineEvent, NodeErrors, PromptError } from './engine/types.ts';
import type { ModelRuntime } from './runtime/index.ts';

export interface CliOutput {
  write(text: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

export interface CliOptions {
  /** Node types (default: every node rdflow ships, from nodes/index.ts). */
  nodes?: readonly AnyNodeDef[];
  stdout?: CliOutput;
  stderr?: CliOutput;
  cwd?: string;
  /** Interrupts a run like Ctrl-C does (tests); SIGINT is handled too when this is absent. */
  signal?: AbortSignal;
}

/**
 * Each command's help: a synopsis, then one line per flag. `rdflow help CMD`, `rdflow CMD --help`
 * print it, and a usage mistake prints it after the message. convert and models keep theirs in
 * convert-cli.ts (CONVERT_USAGE, MODELS_USAGE), loaded only when asked for.
 */
const COMMAND_HELP: Record<string, { summary: string; help?: string }> = {
  run: {
    summary: 'run a workflow file (API or editor format) and print the files it wrote',
    help: `rdflow run WORKFLOW.json [options]
  --set NODE_ID.INPUT=VALUE  change a node's input (repeatable); VALUE is read as JSON when it parses
  --out DIR                  output folder (default ./output)
  --models-dir DIR           models folder (default ./models)
  --input-dir DIR            input folder (default ./input)
  --data-dir DIR             temporary files (default ${defaultDataDirText()})
  --resume                   continue from the last finished clip of a stopped run of this workflow
  --extend N                 continue a finished run with N more clips (same video as K+N clips)
  --checkpoint-limit SIZE    bound of all checkpoints' disk use (default 4G; e.g. 500M)
  --no-checkpoints           save no checkpoint (the run cannot be resumed or extended)`,
  },
  runs: {
    summary: 'list resumable and extendable runs (progress, disk use), or remove them',
    help: `rdflow runs [--clear [KEY|finished]] [--json] [--out DIR]
  --clear [KEY|finished]     remove one checkpoint, the finished ones, or (no argument) all
  --json                     print the list as JSON
  --out DIR                  the output folder whose .rdflow/runs to list (default ./output)`,
  },
  nodes: {
    summary: 'list the node types',
    help: `rdflow nodes [--json]
  --json                     print their /object_info instead`,
  },
  serve: {
    summary: 'start the server and the editor (http://127.0.0.1:8188)',
    help: `rdflow serve [options]
  --port N                   port to listen on (default 8188; 0 picks a free one)
  --listen ADDR              address to bind (default 127.0.0.1; others need --auth-token)
  --output-dir DIR           output folder (default ./output)
  --input-dir DIR            input folder (default ./input)
  --models-dir DIR           models folder (default ./models)
  --workflows-dir DIR        workflow files the editor lists (default the shipped workflows/)
  --data-dir DIR             queue, history and cache files (default ${defaultDataDirText()})
  --auth-token TOKEN         require this token (else RDFLOW_AUTH_TOKEN)
  --no-requeue               mark a prompt running at a crash failed instead of queuing it again
  --queue redis://[:PASSWORD@]HOST[:PORT][/DB]
                             share a queue, history and events in Redis with other API servers and
                             workers (rediss:// for TLS); the output and data folders must be shared
                             too (docs/scale-out.md)
  --workers N                with --queue: 1 runs prompts in this process too (default), 0 serves
                             the API only`,
  },
  worker: {
    summary: 'run prompts from a shared Redis queue (scale-out; see rdflow serve --queue)',
    help: `rdflow worker --queue redis://[:PASSWORD@]HOST[:PORT][/DB] [options]
  --queue URL                the deployment's Redis (rediss:// for TLS)
  --output-dir DIR           the shared output folder (default ./output)
  --input-dir DIR            input folder (default ./input)
  --models-dir DIR           models folder (default ./models)
  --data-dir DIR             the shared data folder: per-clip checkpoints (default ${defaultDataDirText()})
  Timing (environment, milliseconds): RDFLOW_QUEUE_LOCK_MS (30000), RDFLOW_QUEUE_STALLED_MS
  (30000), RDFLOW_QUEUE_BACKOFF_MS (5000); RDFLOW_QUEUE_ATTEMPTS (3 tries of a prompt that fails
  for a reason of its worker).`,
  },
  convert: { summary: 'convert a diffusers or VidRD checkpoint to an ONNX model folder' },
  models: { summary: 'list the models folder: ONNX models and convertible checkpoints' },
};

const HELP_FLAGS = `  -h, --help                 this help`;

/** A command's help text (convert and models from convert-cli.ts). */
async function commandHelp(command: string): Promise<string> {
  const own = COMMAND_HELP[command]?.help;
  if (own !== undefined)
    return `Usage: ${own}
${HELP_FLAGS}
`;
  const { CONVERT_USAGE, MODELS_USAGE } = await import('./convert-cli.ts');
  const usage = command === 'convert' ? CONVERT_USAGE : MODELS_USAGE;
  return `Usage: ${usage}
${HELP_FLAGS}
`;
}

function generalHelp(): string {
  const width = Math.max(...Object.keys(COMMAND_HELP).map((c) => c.length));
  const list = Object.entries(COMMAND_HELP)
    .map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`)
    .join('\n');
  return `Usage: rdflow COMMAND [options]

Commands:
${list}

  rdflow help COMMAND (or rdflow COMMAND --help) lists a command's options.
  rdflow --version prints the version.
`;
}

/** package.json's version. */
export function rdflowVersion(): string {
  const file = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'package.json');
  return (JSON.parse(fs.readFileSync(file, 'utf8')) as { version: string }).version;
}

/** Where `rdflow serve` keeps its data without --data-dir: the platform's per-user data folder. */
export function defaultDataDir(env: NodeJS.ProcessEnv = process.env, platform = process.platform): string {
  const home = env.HOME ?? env.USERPROFILE ?? '.';
  if (platform === 'win32')
    return path.join(env.LOCALAPPDATA ?? path.join(home, 'AppData', 'Local'), 'rdflow');
  if (platform === 'darwin') return path.join(home, 'Library', 'Application Support', 'rdflow');
  const xdg = env.XDG_DATA_HOME;
  return path.join(xdg && path.isAbsolute(xdg) ? xdg : path.join(home, '.local', 'share'), 'rdflow');
}

/**
 * defaultDataDir(), or a folder in the system temp folder when that one cannot be written (no
 * HOME, a read-only home): the command still runs. A --data-dir given is never replaced.
 */
export function writableDefaultDataDir(env: NodeJS.ProcessEnv = process.env): string {
  const dir = defaultDataDir(env);
  if (unwritableFolder(dir) === undefined) return dir;
  return path.join(os.tmpdir(), `rdflow-${os.userInfo().username}`);
}

function defaultDataDirText(): string {
  if (process.platform === 'win32') return '%LOCALAPPDATA%\\rdflow';
  if (process.platform === 'darwin') return '~/Library/Application Support/rdflow';
  return '$XDG_DATA_HOME/rdflow, else ~/.local/share/rdflow';
}

/** An unknown option, named with the command's valid ones. */
class UnknownOptionError extends Error {
  constructor(
    readonly option: string,
    readonly valid: readonly string[],
  ) {
    super(`unknown option '${option}'`);
  }
}

/**
 * node:util's parseArgs, with an unknown option reported with the options the command takes (its
 * own message names only the unknown one).
 */
function parseArgs<T extends ParseArgsConfig>(config: T): ReturnType<typeof parseNodeArgs<T>> {
  try {
    return parseNodeArgs(config);
  } catch (err) {
    if ((err as { code?: unknown }).code !== 'ERR_PARSE_ARGS_UNKNOWN_OPTION') throw err;
    const option = /'([^']+)'/.exec((err as Error).message)?.[1] ?? '?';
    const valid = Object.entries(config.options ?? {}).flatMap(([name, o]) => [
      `--${name}`,
      ...(o.short ? [`-${o.short}`] : []),
    ]);
    throw new UnknownOptionError(option, valid);
  }
}

/** Exit codes: 0 ok, 1 a node failed, 2 bad usage or an invalid workflow, 130 interrupted. */
export const EXIT = { ok: 0, failed: 1, invalid: 2, interrupted: 130 } as const;

class UsageError extends Error {}

/** The shipped node list, imported once per process (each import() is a trip through the loader hooks). */
let shippedNodes: Promise<readonly AnyNodeDef[]> | undefined;

async function loadNodes(opts: CliOptions): Promise<readonly AnyNodeDef[]> {
  if (opts.nodes) return opts.nodes;
  shippedNodes ??= import('../nodes/index.ts').then(
    (mod: { allNodes: readonly AnyNodeDef[] }) => mod.allNodes,
    (err: unknown) => {
      shippedNodes = undefined; // a failed import is tried again next time
      throw err;
    },
  );
  return shippedNodes;
}

/**
 * The process's model runtime, which the CLI lends the nodes it runs (loaded only by the commands
 * that run models: `nodes` and `help` need no worker thread).
 */
async function processRuntime(): Promise<ModelRuntime> {
  const { getRuntime } = await import('./runtime/index.ts');
  return getRuntime();
}

/**
 * Folders relative to cwd: ./output, ./input, ./models; temp files (spill cache, previews) under
 * the data dir (--data-dir, else the platform's per-user data folder), not beside the output.
 */
export function cliPaths(
  cwd: string,
  o: { out?: string; input?: string; models?: string; data?: string },
): NodePaths {
  const output = path.resolve(cwd, o.out ?? 'output');
  return {
    output,
    input: path.resolve(cwd, o.input ?? 'input'),
    models: path.resolve(cwd, o.models ?? 'models'),
    temp: path.join(path.resolve(cwd, o.data ?? defaultDataDir()), 'temp'),
  };
}

/**
 * Why `dir` cannot hold output (created if missing, then a probe file written and removed), or
 * undefined. Checked before a run starts, so a bad --out fails at once instead of after the work.
 */
export function unwritableFolder(dir: string): string | undefined {
  const probe = path.join(dir, `.rdflow-write-test-${process.pid}`);
  try {
    makeDirs(dir);
    fs.writeFileSync(probe, '');
    fs.rmSync(probe, { force: true });
    return undefined;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code ?? (err as Error).message;
  }
}

/**
 * `--set 5.steps=20`: JSON when it parses (numbers, booleans, lists), else the raw string. The
 * node must be in the workflow and, when `nodes` is given, the input one its type declares: a
 * typo is an error naming what there is, not a value the run silently ignores.
 */
export function applySets(
  prompt: ApiPrompt,
  sets: readonly string[],
  nodes?: readonly AnyNodeDef[],
): ApiPrompt {
  const out: ApiPrompt = structuredClone(prompt);
  for (const set of sets) {
    const eq = set.indexOf('=');
    const dot = set.indexOf('.');
    if (eq < 0 || dot < 0 || dot > eq) throw new UsageError(`--set ${set}: expected NODE_ID.INPUT=VALUE`);
    const nodeId = set.slice(0, dot);
    const input = set.slice(dot + 1, eq);
    const raw = set.slice(eq + 1);
    // Own keys only: `constructor` or `__proto__` are no node ids, whatever Object.prototype says.
    if (!Object.hasOwn(out, nodeId)) {
      const ids = Object.keys(out).map((id) => `${id} (${out[id].class_type})`);
      throw new UsageError(
        `--set ${set}: the workflow has no node ${nodeId}; its nodes are ${ids.join(', ')}`,
      );
    }
    if (input === '') throw new UsageError(`--set ${set}: no input name`);
    const classType = out[nodeId].class_type;
    const def = nodes?.find((n) => n.name === classType);
    const declared = def
      ? [...Object.keys(def.inputs.required), ...Object.keys(def.inputs.optional ?? {})]
      : [];
    if (def ? !declared.includes(input) : input in Object.prototype)
      throw new UsageError(
        `--set ${set}: node ${nodeId} (${classType}) has no input '${input}'` +
          (def ? `; its inputs are ${declared.join(', ') || '(none)'}` : ''),
      );
    let value: unknown = raw;
    try {
      value = JSON.parse(raw);
    } catch {
      // a plain string
    }
    // A list constant must be wrapped, or [id, index] would read as a link.
    // defineProperty: a plain assignment to a key like __proto__ would set the prototype.
    Object.defineProperty(out[nodeId].inputs, input, {
      value: Array.isArray(value) ? { __value__: value } : value,
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return out;
}

/**
 * The prompt checks of client/src/prompt-check.ts (the editor runs them too) as lines: an empty
 * positive prompt is an error, unknown words of the demo model a warning. A model's vocabulary is
 * read from its folder under `modelsDir` (readModelInfo: the demo model's words, also before it is made).
 */
export function checkPrompts(prompt: ApiPrompt, modelsDir: string): { errors: string[]; warnings: string[] } {
  const r = checkPromptTexts(prompt, (model) => {
    const words = readModelInfo(path.resolve(modelsDir, model)).vocabulary;
    return words && new Set(words);
  });
  const line = (p: PromptProblem) =>
    `node ${p.nodeId} (${p.classType})${p.input ? ` input '${p.input}'` : ''}: ${p.message}`;
  return { errors: r.errors.map(line), warnings: r.warnings.map(line) };
}

/** One line per problem: node id, class, input and message. */
export function formatValidationErrors(
  prompt: ApiPrompt,
  error: PromptError,
  nodeErrors: NodeErrors,
): string {
  const lines: string[] = [];
  const items = Object.entries(nodeErrors).flatMap(([id, e]) =>
    e.errors.map((x) => ({ id, cls: e.class_type, x })),
  );
  lines.push(
    items.length > 0
      ? `The workflow is invalid: ${items.length} problem${items.length === 1 ? '' : 's'}`
      : `The workflow is invalid: ${error.message}${error.details ? ` (${error.details})` : ''}`,
  );
  for (const { id, cls, x } of items) {
    const title = prompt[id]?._meta?.title;
    const named = title && title !== cls ? `${cls} "${title}"` : cls;
    const input = x.extra_info.input_name ? ` input '${x.extra_info.input_name}'` : '';
    lines.push(`  node ${id} (${named})${input}: ${x.message}`);
  }
  return `${lines.join('\n')}\n`;
}

function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '--';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  return h > 0
    ? `${h}h${String(m).padStart(2, '0')}m`
    : m > 0
      ? `${m}m${String(sec).padStart(2, '0')}s`
      : `${sec}s`;
}

/**
 * Progress reporting: a single redrawn line on a TTY (node, clip i/K, step s/S, ETA), or one
 * plain line per event otherwise.
 */
export function createProgressReporter(
  out: CliOutput,
  classOf: (id: string) => string,
  now = () => Date.now(),
) {
  const tty = out.isTTY === true;
  let node = '';
  let clip: { i: number; n: number; node: string; started: number } | undefined;
  let step: { value: number; max: number } | undefined;
  let nodeStarted = now();
  let drawn = false;

  // In a loop the sampler's steps dominate a clip, so clips done + the step fraction of this clip
  // measure the whole run; outside loops, the current node's steps.
  const eta = (): string => {
    const t = now();
    if (clip) {
      const frac = clip.i + (step ? step.value / step.max : 0);
      if (frac > 0) return formatDuration(((t - clip.started) / 1000 / frac) * (clip.n - frac));
      return '--';
    }
    if (step && step.value > 0)
      return formatDuration(((t - nodeStarted) / 1000 / step.value) * (step.max - step.value));
    return '--';
  };
  const draw = () => {
    const parts = [`node ${node} (${classOf(node)})`];
    if (clip) parts.push(`clip ${clip.i + 1}/${clip.n}`);
    if (step) {
      const width = 20;
      const filled = Math.round((step.value / step.max) * width);
      parts.push(`step ${step.value}/${step.max} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}]`);
    }
    parts.push(`ETA ${eta()}`);
    let line = parts.join('  ');
    const cols = out.columns !== undefined && out.columns > 20 ? out.columns : 100;
    if (line.length > cols - 1) line = line.slice(0, cols - 1);
    out.write(`\r\x1b[2K${line}`);
    drawn = true;
  };
  const println = (text: string) => {
    if (tty && drawn) out.write('\r\x1b[2K');
    out.write(`${text}\n`);
    drawn = false;
  };

  return {
    onEvent(e: EngineEvent): void {
      switch (e.type) {
        case 'executing':
          node = e.node;
          step = undefined;
          nodeStarted = now();
          if (tty) draw();
          else
            println(
              `executing node ${e.node} (${classOf(e.node)})${clip ? ` clip ${clip.i + 1}/${clip.n}` : ''}`,
            );
          return;
        case 'loop_iteration':
          if (!clip || clip.node !== e.node || e.iteration === 0)
            clip = { i: e.iteration, n: e.iterations, node: e.node, started: now() };
          else clip.i = e.iteration;
          if (!tty) println(`loop ${e.node}: iteration ${e.iteration + 1}/${e.iterations}`);
          return;
        case 'progress':
          node = e.node;
          step = { value: e.value, max: e.max };
          if (tty) draw();
          else {
            const where = e.iteration !== undefined ? ` clip ${e.iteration + 1}/${e.iterations}` : '';
            println(`progress node ${e.node}${where} step ${e.value}/${e.max}`);
          }
          return;
        case 'execution_cached':
          if (!tty && e.nodes.length > 0) println(`cached: ${e.nodes.join(', ')}`);
          return;
        case 'executed':
          if (!tty) println(`executed node ${e.node} (${classOf(e.node)})`);
          return;
        case 'execution_start':
          if (!tty) println('execution started');
          return;
        case 'execution_success':
          println('done');
          return;
        case 'preview':
        case 'execution_error':
        case 'execution_interrupted':
          // Errors and interrupts are reported by the caller with the run's summary.
          return;
      }
    },
    finish(): void {
      if (tty && drawn) out.write('\r\x1b[2K');
      drawn = false;
    },
  };
}

/** Files named in UI outputs (`images`, `gifs`, `videos` entries of type output) as paths. */
export function writtenFiles(outputs: Record<string, UiOutput>, outputDir: string): string[] {
  const files = new Set<string>();
  for (const ui of Object.values(outputs)) {
    for (const key of ['images', 'gifs', 'videos']) {
      for (const item of ui[key] ?? []) {
        if (item === null || typeof item !== 'object') continue;
        const { filename, subfolder, type } = item as {
          filename?: unknown;
          subfolder?: unknown;
          type?: unknown;
        };
        if (typeof filename !== 'string' || (type !== undefined && type !== 'output')) continue;
        files.add(path.join(outputDir, typeof subfolder === 'string' ? subfolder : '', filename));
      }
    }
  }
  return [...files];
}

async function cmdRun(
  args: string[],
  opts: CliOptions,
  stdout: CliOutput,
  stderr: CliOutput,
): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      set: { type: 'string', multiple: true, default: [] },
      out: { type: 'string' },
      'models-dir': { type: 'string' },
      'input-dir': { type: 'string' },
      'data-dir': { type: 'string' },
      resume: { type: 'boolean', default: false },
      extend: { type: 'string' },
      'checkpoint-limit': { type: 'string' },
      'no-checkpoints': { type: 'boolean', default: false },
    },
  });
  if (positionals.length !== 1) throw new UsageError('rdflow run needs exactly one workflow file');
  if (values.resume && values.extend !== undefined)
    throw new UsageError('--resume and --extend exclude each other');
  const cwd = opts.cwd ?? process.cwd();
  const file = path.resolve(cwd, positionals[0]);
  let json: unknown;
  try {
    json = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    const why =
      err instanceof SyntaxError
        ? `not valid JSON: ${err.message}`
        : `cannot read it (${(err as Error).message})`;
    stderr.write(`${positionals[0]}: ${why}\n`);
    return EXIT.invalid;
  }
  const nodes = await loadNodes(opts);
  let prompt: ApiPrompt;
  try {
    prompt = applySets(toApiPrompt(json, nodes), values.set, nodes);
  } catch (err) {
    if (err instanceof WorkflowFormatError || err instanceof UsageError) {
      stderr.write(`${positionals[0]}: ${err.message}\n`);
      return EXIT.invalid;
    }
    throw err;
  }

  const paths = cliPaths(cwd, {
    out: values.out,
    input: values['input-dir'],
    models: values['models-dir'],
    data: values['data-dir'] ?? writableDefaultDataDir(),
  });
  const checked = checkPrompts(prompt, paths.models);
  for (const w of checked.warnings) stderr.write(`warning: ${w}\n`);
  if (checked.errors.length > 0) {
    stderr.write(`The workflow is invalid:\n${checked.errors.map((e) => `  ${e}\n`).join('')}`);
    return EXIT.invalid;
  }
  for (const [dir, what] of [
    [paths.output, 'output folder'],
    [paths.temp, 'temp folder'],
  ] as const) {
    const why = unwritableFolder(dir);
    if (why !== undefined) {
      const flag = dir === paths.output ? '--out' : '--data-dir';
      stderr.write(`rdflow: cannot write the ${what} ${dir} (${why}); choose another with ${flag} DIR\n`);
      return EXIT.invalid;
    }
  }
  // Checkpoints after each clip (.rdflow/runs beside the output); --resume / --extend continue one.
  const runs = await import('./runs/cli.ts');
  const { CheckpointStore } = await import('./runs/store.ts');
  const store = new CheckpointStore(
    runs.runsDir(paths),
    runs.nodeKinds(nodes),
    runs.checkpointLimit(values['checkpoint-limit']),
    (key, why) => stderr.write(`rdflow: removed checkpoint ${key} (${why})\n`),
  );
  let from: string | undefined;
  if (values.resume || values.extend !== undefined) {
    try {
      const chosen = runs.chooseResume(store, prompt, file, values.extend);
      prompt = chosen.prompt;
      from = chosen.from;
    } catch (err) {
      stderr.write(`rdflow: ${(err as Error).message}\n`);
      return EXIT.invalid;
    }
  }
  const checkpoint = store.open(prompt, { source: file, resume: from !== undefined, from });
  // One prompt per process: nothing re-runs here, so the disk tier (which exists so that re-runs
  // can reuse loop-body outputs) would only cost a serialize and a file write per body output.
  const engine = createEngine({ nodes, paths, services: { models: await processRuntime() }, spillBytes: 0 });
  const classOf = (id: string) => prompt[id]?.class_type ?? '?';
  const controller = new AbortController();
  const onSigint = () => controller.abort();
  if (opts.signal) opts.signal.addEventListener('abort', onSigint, { once: true });
  else process.once('SIGINT', onSigint);
  const reporter = createProgressReporter(stdout, classOf);
  let errorEvent: Extract<EngineEvent, { type: 'execution_error' }> | undefined;
  try {
    const result = await engine.run(prompt, {
      promptId: `cli-${Date.now()}`,
      signal: controller.signal,
      // The terminal shows no images: nodes need not encode previews (a PNG per clip).
      previews: false,
      checkpoints: values['no-checkpoints'] ? undefined : checkpoint,
      onEvent: (e) => {
        if (e.type === 'execution_error') errorEvent = e;
        reporter.onEvent(e);
      },
    });
    reporter.finish();
    if (result.status === 'success') checkpoint.finish();
    else checkpoint.stop();
    switch (result.status) {
      case 'invalid':
        stderr.write(formatValidationErrors(prompt, result.validation.error, result.validation.nodeErrors));
        return EXIT.invalid;
      case 'interrupted':
        stderr.write(
          `Interrupted${result.nodeId ? ` in node ${result.nodeId} (${classOf(result.nodeId)})` : ''}\n`,
        );
        if (store.get(checkpoint.key)) {
          stderr.write(`Continue from the last finished clip with: rdflow run ${positionals[0]} --resume\n`);
        }
        return EXIT.interrupted;
      case 'error': {
        if (errorEvent?.exceptionType === 'ResumeRefusedError') {
          stderr.write(`rdflow: ${result.message}\n`);
          return EXIT.invalid;
        }
        stderr.write(`Error in node ${result.nodeId} (${classOf(result.nodeId)}): ${result.message}\n`);
        if (errorEvent && errorEvent.exceptionType !== 'Error')
          stderr.write(`  (${errorEvent.exceptionType})\n`);
        return EXIT.failed;
      }
      case 'success': {
        const files = writtenFiles(result.outputs, paths.output);
        if (files.length > 0) stdout.write(`Wrote:\n${files.map((f) => `  ${f}\n`).join('')}`);
        else stdout.write('Finished; no files were written.\n');
        return EXIT.ok;
      }
    }
    return EXIT.failed;
  } finally {
    if (!opts.signal) process.removeListener('SIGINT', onSigint);
    engine.close();
  }
}

async function cmdNodes(args: string[], opts: CliOptions, stdout: CliOutput): Promise<number> {
  const { values } = parseArgs({ args, options: { json: { type: 'boolean', default: false } } });
  const nodes = await loadNodes(opts);
  if (values.json) {
    const engine = createEngine({ nodes, paths: cliPaths(opts.cwd ?? process.cwd(), {}) });
    stdout.write(`${JSON.stringify(engine.objectInfo(), null, 2)}\n`);
    engine.close();
    return EXIT.ok;
  }
  const byCategory = new Map<string, AnyNodeDef[]>();
  for (const n of nodes) byCategory.set(n.category, [...(byCategory.get(n.category) ?? []), n]);
  for (const [category, list] of byCategory) {
    stdout.write(`${category}\n`);
    for (const n of list) {
      const flag = n.outputNode ? ' [output]' : '';
      stdout.write(`  ${n.name.padEnd(20)} ${n.displayName}${flag}: ${n.description}\n`);
    }
  }
  return EXIT.ok;
}

async function cmdServe(args: string[], opts: CliOptions, stdout: CliOutput): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      port: { type: 'string', default: '8188' },
      listen: { type: 'string', default: '127.0.0.1' },
      'output-dir': { type: 'string' },
      'input-dir': { type: 'string' },
      'models-dir': { type: 'string' },
      'workflows-dir': { type: 'string' },
      'auth-token': { type: 'string' },
      // A prompt running when the server died is queued again once by default; this marks it failed.
      'no-requeue': { type: 'boolean', default: false },
      // Queue, history, spill cache and temp files; default the platform's per-user data folder.
      'data-dir': { type: 'string' },
      queue: { type: 'string' },
      workers: { type: 'string' },
    },
  });
  if (values.workers !== undefined && values.queue === undefined)
    throw new UsageError(
      '--workers needs --queue redis://… (the embedded queue runs prompts in this process)',
    );
  if (values.workers !== undefined && values.workers !== '0' && values.workers !== '1')
    throw new UsageError(
      `--workers ${values.workers}: 0 (API only) or 1; run more workers as \`rdflow worker\` processes`,
    );
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new UsageError(`--port ${values.port}: not a port number`);
  const cwd = opts.cwd ?? process.cwd();
  const { paths, dataDir } = serverFolders(cwd, values);
  // The server is assembled here: the shipped nodes (or the caller's), the process's model
  // runtime and the embedded queue and history, which this command opens and closes. The server
  // modules are imported only when serving: `run` and `nodes` need none of them.
  const api = await import('./api/index.ts');
  const { openStore } = await import('./api/store.ts');
  const sharedQueue =
    values.queue === undefined
      ? undefined
      : { ...(await sharedQueueOptions(values.queue)), worker: values.workers !== '0' };
  // A shared queue brings its own history; the embedded one is opened (and locked) here.
  const store = sharedQueue ? undefined : openStore(dataDir);
  let server: Awaited<ReturnType<typeof api.startServer>>;
  try {
    server = await api.startServer({
      port,
      host: values.listen,
      outputDir: paths.output,
      inputDir: paths.input,
      modelsDir: paths.models,
      dataDir,
      tempDir: path.join(dataDir, 'temp'),
      clientDir: ensureClientBuilt((m) => stdout.write(`${m}\n`)),
      // Relative to the cwd like the other folders; absent, the server uses the repo's workflows/.
      workflowsDir:
        values['workflows-dir'] === undefined ? undefined : path.resolve(cwd, values['workflows-dir']),
      authToken: values['auth-token'],
      nodes: await loadNodes(opts),
      runtime: await processRuntime(),
      ...(store ? { queue: store.queue, history: store.history } : { sharedQueue }),
      requeueCrashed: !values['no-requeue'],
    });
  } catch (err) {
    await store?.close();
    throw err;
  }
  stdout.write(`rdflow server listening on ${server.url}\n`);
  if (sharedQueue) {
    const runs = sharedQueue.worker ? 'runs prompts too' : 'API only (--workers 0)';
    stdout.write(`shared queue ${api.parseRedisUrl(sharedQueue.url).redacted}; ${runs}\n`);
  }
  await stopRequested(opts);
  await server.close();
  await store?.close();
  return EXIT.ok;
}

/** The folders of `serve` and `worker`, from their flags (relative to the cwd). */
function serverFolders(cwd: string, flags: Record<string, unknown>): { paths: NodePaths; dataDir: string } {
  const flag = (name: string) => (typeof flags[name] === 'string' ? flags[name] : undefined);
  const paths = cliPaths(cwd, {
    out: flag('output-dir'),
    input: flag('input-dir'),
    models: flag('models-dir'),
  });
  return { paths, dataDir: path.resolve(cwd, flag('data-dir') ?? writableDefaultDataDir()) };
}

/** Resolves at Ctrl-C / SIGTERM (or the caller's abort signal). */
function stopRequested(opts: CliOptions): Promise<void> {
  return new Promise<void>((resolve) => {
    if (opts.signal) opts.signal.addEventListener('abort', () => resolve(), { once: true });
    else {
      process.once('SIGINT', () => resolve());
      process.once('SIGTERM', () => resolve());
    }
  });
}

/** A whole number of milliseconds from the environment, or undefined when unset. */
function envMs(name: string): number | undefined {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return undefined;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`${name}=${raw}: a whole number ≥ 1 is expected`);
  return n;
}

/**
 * `--queue URL` with the timing the environment sets (tests shorten locks and stalled checks). A
 * malformed URL is a usage mistake, named without its password.
 */
async function sharedQueueOptions(url: string) {
  const { parseRedisUrl, RedisUrlError } = await import('./api/redis/url.ts');
  try {
    parseRedisUrl(url);
  } catch (err) {
    if (err instanceof RedisUrlError) throw new UsageError(`--queue: ${err.message}`);
    throw err;
  }
  return {
    url,
    attempts: envMs('RDFLOW_QUEUE_ATTEMPTS'),
    backoffMs: envMs('RDFLOW_QUEUE_BACKOFF_MS'),
    timing: {
      lockDuration: envMs('RDFLOW_QUEUE_LOCK_MS'),
      stalledInterval: envMs('RDFLOW_QUEUE_STALLED_MS'),
    },
  };
}

async function cmdWorker(args: string[], opts: CliOptions, stdout: CliOutput): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      queue: { type: 'string' },
      'output-dir': { type: 'string' },
      'input-dir': { type: 'string' },
      'models-dir': { type: 'string' },
      'data-dir': { type: 'string' },
    },
  });
  if (values.queue === undefined) throw new UsageError('rdflow worker needs --queue redis://…');
  const cwd = opts.cwd ?? process.cwd();
  const { paths, dataDir } = serverFolders(cwd, values);
  const api = await import('./api/index.ts');
  const sharedQueue = await sharedQueueOptions(values.queue);
  const worker = await api.startWorker({
    outputDir: paths.output,
    inputDir: paths.input,
    modelsDir: paths.models,
    dataDir,
    tempDir: path.join(dataDir, 'temp'),
    nodes: await loadNodes(opts),
    runtime: await processRuntime(),
    sharedQueue,
  });
  stdout.write(`rdflow worker running prompts from ${api.parseRedisUrl(sharedQueue.url).redacted}\n`);
  await stopRequested(opts);
  await worker.close();
  return EXIT.ok;
}

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** Newest modification time of the files the editor build reads (client/, workflows/), or 0. */
function newestClientSource(): number {
  let newest = 0;
  const walk = (dir: string): void => {
    if (!fs.existsSync(dir)) return;
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(p);
      else newest = Math.max(newest, fs.statSync(p).mtimeMs);
    }
  };
  walk(path.join(repoRoot, 'client'));
  walk(path.join(repoRoot, 'workflows'));
  return newest;
}

/**
 * The built editor (dist/client), built first when it is missing or older than its sources, so
 * `rdflow serve` works straight after `npm ci` with no build step. The build goes to a fresh
 * folder renamed into place, so a server (or test) starting meanwhile never serves half a build.
 * Without vite (a dev dependency: `npm ci --omit=dev`) an existing build is used as it is.
 */
export function ensureClientBuilt(log: (message: string) => void = () => undefined): string {
  const dir = path.join(repoRoot, 'dist', 'client');
  const index = path.join(dir, 'index.html');
  const vite = path.join(repoRoot, 'node_modules', 'vite', 'bin', 'vite.js');
  const built = fs.existsSync(index) ? fs.statSync(index).mtimeMs : -1;
  if (built >= newestClientSource() || !fs.existsSync(vite)) return dir;
  log(built < 0 ? 'building the editor (first start)...' : 'rebuilding the editor (its sources changed)...');
  const tmp = path.join(repoRoot, 'dist', `.client-${process.pid}-${Date.now()}`);
  try {
    execFileSync(
      process.execPath,
      [vite, 'build', '--config', 'client/vite.config.ts', '--logLevel', 'error', '--outDir', tmp],
      { cwd: repoRoot, stdio: ['ignore', 'ignore', 'inherit'] },
    );
    fs.rmSync(dir, { recursive: true, force: true });
    try {
      fs.renameSync(tmp, dir);
    } catch (err) {
      // Another process put its build there first: the same sources, so keep that one.
      if (!fs.existsSync(index)) throw err;
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  return dir;
}

/** Aborts on Ctrl-C (the first one; a second is Node's default, ending the process). */
function sigintSignal(): AbortSignal {
  const ac = new AbortController();
  process.once('SIGINT', () => ac.abort(new Error('interrupted')));
  return ac.signal;
}

/** Runs one rdflow command; resolves to the exit code. */
export async function runCli(argv: readonly string[], opts: CliOptions = {}): Promise<number> {
  const stdout = opts.stdout ?? process.stdout;
  const stderr = opts.stderr ?? process.stderr;
  const [command, ...args] = argv;
  try {
    // `rdflow CMD --help` (before any `--`) is that command's help, whatever else is given.
    const beforeDashes = args.indexOf('--') < 0 ? args : args.slice(0, args.indexOf('--'));
    if (command !== undefined && Object.hasOwn(COMMAND_HELP, command)) {
      if (beforeDashes.includes('--help') || beforeDashes.includes('-h')) {
        stdout.write(await commandHelp(command));
        return EXIT.ok;
      }
    }
    switch (command) {
      case 'run':
        return await cmdRun(args, opts, stdout, stderr);
      case 'nodes':
        return await cmdNodes(args, opts, stdout);
      case 'runs': {
        const { cmdRuns } = await import('./runs/cli.ts');
        const cwd = opts.cwd ?? process.cwd();
        return cmdRuns(args, cwd, stdout, (out) => cliPaths(cwd, { out }).output);
      }
      case 'serve':
        return await cmdServe(args, opts, stdout);
      case 'worker':
        return await cmdWorker(args, opts, stdout);
      case 'convert': {
        const { cmdConvert } = await import('./convert-cli.ts');
        return await cmdConvert(args, stdout, opts.signal ?? sigintSignal(), opts.cwd ?? process.cwd());
      }
      case 'models': {
        const { cmdModels } = await import('./convert-cli.ts');
        return await cmdModels(args, opts.cwd ?? process.cwd(), stdout);
      }
      case 'help': {
        const topic = args[0];
        if (topic === undefined) stdout.write(generalHelp());
        else if (Object.hasOwn(COMMAND_HELP, topic)) stdout.write(await commandHelp(topic));
        else throw new UsageError(`no command '${topic}'`);
        return EXIT.ok;
      }
      case '--help':
      case '-h':
        stdout.write(generalHelp());
        return EXIT.ok;
      case '--version':
      case '-v':
        stdout.write(`rdflow ${rdflowVersion()}\n`);
        return EXIT.ok;
      case undefined:
        stderr.write(generalHelp());
        return EXIT.invalid;
      default:
        throw new UsageError(`unknown command '${command}'`);
    }
  } catch (err) {
    // parseArgs reports unknown options with this code; both are the user's to fix.
    const code = (err as { code?: unknown }).code;
    const usage = err instanceof UsageError || (err instanceof Error && err.name === 'UsageError');
    const known = command !== undefined && Object.hasOwn(COMMAND_HELP, command);
    if (err instanceof UnknownOptionError || code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
      // convert/models parse their own arguments: their valid options are the flags their help lists.
      const help = known ? await commandHelp(command) : generalHelp();
      const option =
        err instanceof UnknownOptionError
          ? err.option
          : (/'([^']+)'/.exec((err as Error).message)?.[1] ?? '?');
      const valid =
        err instanceof UnknownOptionError
          ? [...err.valid, '--help']
          : [...new Set(help.match(/(?<![\w-])--[a-z][a-z0-9-]*/g) ?? [])];
      stderr.write(
        `rdflow ${command}: unknown option '${option}'; valid options: ${valid.join(', ')}\n${help}`,
      );
      return EXIT.invalid;
    }
    if (usage || (typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS'))) {
      const help = known ? await commandHelp(command) : generalHelp();
      stderr.write(`rdflow: ${(err as Error).message}\n${help}`);
      return EXIT.invalid;
    }
    stderr.write(`rdflow: ${err instanceof Error ? err.message : String(err)}\n`);
    return EXIT.failed;
  }
}

/** True when this module is the program (bin/rdflow.js imports it, or `tsx server/cli.ts`). */
function isEntry(): boolean {
  const arg = process.argv[1];
  if (!arg) return false;
  let entry = path.resolve(arg);
  try {
    entry = fs.realpathSync(entry);
  } catch {
    // keep the unresolved path
  }
  const self = fileURLToPath(import.meta.url);
  const bin = path.resolve(path.dirname(self), '..', 'bin', 'rdflow.js');
  return entry === self || entry === bin;
}

if (isEntry()) {
  const code = await runCli(process.argv.slice(2));
  // Ending the process while onnxruntime is inside a native call in the worker aborts it
  // (exit 134); close() lets a running call finish and ends the worker cleanly first.
  await (await processRuntime()).close();
  // Other handles (timers, sockets) may still hold the event loop open; the command is done.
  process.exit(code);
}
