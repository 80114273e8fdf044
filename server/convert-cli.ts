// `rdflow convert SRC DEST` and `rdflow models`: the command-line side of the converter, kept out
// of cli.ts so the run/serve commands don't load it. Progress is a redrawn bar on a terminal and
// plain lines otherwise; the summary lists components, parameters, dtype, time and size.
import { parseArgs } from 'node:util';
import path from 'node:path';
import { convertModel, type ConvertProgress, type ConvertSummary } from './runtime/convert/index.ts';
import { listModels, type ModelListing } from './runtime/convert/catalog.ts';
import { describeLimits } from './runtime/families/info.ts';
import { formatBytes } from './runs/store.ts';

export interface Out {
  write(text: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

export const CONVERT_USAGE = `rdflow convert SRC DEST [--dtype float32|float16] [--force]
rdflow convert --sd DIR --checkpoint FILE --vae DIR DEST [--dtype ...] [--force]
  SRC: a diffusers TextToVideoSDPipeline folder (text-to-video-ms-1.7b, Zeroscope v2, fine-tunes)
       or a VidRD release (ModelT2V.pth + vae_finetuned/ + a Stable Diffusion 2.1-base folder)
  --sd, --checkpoint, --vae: a VidRD release whose three parts lie apart
  DEST: the ONNX model folder to write (put it under models/ to use it by name)`;

export const MODELS_USAGE = `rdflow models [--models-dir DIR] [--json]`;

/** 1.42 B, 865.9 M, 46.3 k. */
function formatCount(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)} B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)} M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} k`;
  return String(n);
}

/** A progress reporter: one redrawn line per component on a TTY, a line per 10 % otherwise. */
function convertProgress(out: Out): (p: ConvertProgress) => void {
  const tty = out.isTTY === true;
  let started = performance.now();
  let lastDecile = -1;
  return (p) => {
    switch (p.phase) {
      case 'start':
        out.write(
          `converting a ${p.family} model: ${p.components.map((c) => `${c.name} ${formatCount(c.parameters)} parameters`).join(', ')}\n`,
        );
        return;
      case 'write': {
        if (p.done === 0 || lastDecile === -1) {
          started = performance.now();
        }
        const frac = p.total > 0 ? p.done / p.total : 1;
        const secs = (performance.now() - started) / 1000;
        const rate = secs > 0 ? `${formatBytes(Math.round(p.done / secs))}/s` : '';
        if (tty) {
          const width = 30;
          const filled = Math.round(frac * width);
          const line = `${p.component.padEnd(12)} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${formatBytes(p.done)} / ${formatBytes(p.total)}  ${rate}`;
          out.write(`\r\x1b[2K${line}`);
          lastDecile = 0;
        } else {
          const decile = Math.floor(frac * 10);
          if (decile !== lastDecile) {
            lastDecile = decile;
            out.write(
              `${p.component}: ${formatBytes(p.done)} / ${formatBytes(p.total)} (${decile * 10} %) ${rate}\n`,
            );
          }
        }
        return;
      }
      case 'component-done':
        if (tty) out.write('\n');
        lastDecile = -1;
        return;
    }
  };
}

function formatSummary(s: ConvertSummary): string {
  const lines = [
    `converted ${s.family} model into ${s.dest} (${s.dtype}) in ${s.seconds.toFixed(1)} s, ${formatBytes(s.bytes)} on disk`,
  ];
  for (const c of s.components) {
    lines.push(
      `  ${c.name.padEnd(12)} ${formatCount(c.parameters).padStart(9)} parameters  ${formatBytes(c.bytes).padStart(10)}  ${c.seconds.toFixed(1)} s`,
    );
    for (const n of c.notes) lines.push(`               ${n}`);
  }
  for (const n of s.notes) lines.push(`  note: ${n}`);
  return `${lines.join('\n')}\n`;
}

export async function cmdConvert(
  args: string[],
  stdout: Out,
  signal?: AbortSignal,
  cwd = process.cwd(),
): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      dtype: { type: 'string', default: 'float32' },
      force: { type: 'boolean', default: false },
      sd: { type: 'string' },
      checkpoint: { type: 'string' },
      vae: { type: 'string' },
    },
  });
  const parts = [values.sd, values.checkpoint, values.vae];
  const explicit = parts.some((p) => p !== undefined);
  if (explicit && parts.some((p) => p === undefined)) {
    throw new UsageErrorLike(`--sd, --checkpoint and --vae go together (a VidRD release's three parts)`);
  }
  if (explicit && positionals.length === 1)
    positionals.unshift(path.dirname(path.resolve(cwd, values.checkpoint!)));
  if (positionals.length !== 2) throw new UsageErrorLike(`convert takes SRC and DEST\n${CONVERT_USAGE}`);
  const dtype = values.dtype;
  if (dtype !== 'float32' && dtype !== 'float16') {
    throw new UsageErrorLike(`--dtype ${dtype}: use float32 or float16`);
  }
  const [src, dest] = positionals.map((p) => path.resolve(cwd, p));
  try {
    const summary = await convertModel(src, dest, {
      dtype,
      force: values.force,
      signal,
      vidrdParts: explicit
        ? {
            sd: path.resolve(cwd, values.sd!),
            checkpoint: path.resolve(cwd, values.checkpoint!),
            vae: path.resolve(cwd, values.vae!),
          }
        : undefined,
      onProgress: convertProgress(stdout),
    });
    stdout.write(formatSummary(summary));
    return 0;
  } catch (e) {
    if (signal?.aborted) {
      stdout.write(`\nconvert interrupted: nothing was written to ${dest}\n`);
      return 130;
    }
    throw e;
  }
}

function formatListing(models: readonly ModelListing[], dir: string): string {
  if (models.length === 0) return `no models in ${dir}\n`;
  const rows = models.map((m) => [
    m.name,
    m.family,
    m.dtype,
    formatBytes(m.bytes),
    describeLimits(m.limits),
    m.source ?? '',
  ]);
  const head = ['NAME', 'FAMILY', 'DTYPE', 'SIZE', 'LIMITS', 'SOURCE'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  return (
    [head, ...rows]
      .map((r) =>
        r
          .map((c, i) => c.padEnd(widths[i]))
          .join('  ')
          .trimEnd(),
      )
      .join('\n') + '\n'
  );
}

export async function cmdModels(args: string[], cwd: string, stdout: Out): Promise<number> {
  const { values } = parseArgs({
    args,
    options: { 'models-dir': { type: 'string' }, json: { type: 'boolean', default: false } },
  });
  const dir = path.resolve(cwd, values['models-dir'] ?? 'models');
  const models = await listModels(dir);
  stdout.write(values.json ? `${JSON.stringify(models, null, 2)}\n` : formatListing(models, dir));
  return 0;
}

/** A usage mistake: cli.ts maps errors with this name to exit code 2 and the usage text. */
export class UsageErrorLike extends Error {
  override name = 'UsageError';
}
