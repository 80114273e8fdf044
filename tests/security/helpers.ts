// Shared by the security tests: the server test nodes plus the real LoadVideoModel (the CLI's
// variant: the server must swap in its confined one) and VideoWrite, a node that makes small
// frames (and can run a test's hook before a clip, to play an attacker mid-run), a node that kills
// its process (a prompt that crashes the server), raw multipart uploads, and a server in its own
// process for kill -9.
import { defineNode, input, output, type AnyNodeDef } from '../../server/engine/define.ts';
import type { Tensor } from '../../server/core/tensor-type.ts';
import { loadVideoModelNode } from '../../nodes/load-video-model.ts';
import { videoWriteNode } from '../../nodes/video-write.ts';
import { serverTestNodes } from '../server/fixtures/nodes.ts';
import { spawnServerProcess, type SpawnedServer } from '../server/helpers.ts';

export type { SpawnedServer };

/** Called by TestImages before it makes the frames of loop index `index` (in-process servers). */
export const imageHooks = new Map<string, (index: number) => void | Promise<void>>();

const imagesNode = defineNode({
  name: 'TestImages',
  displayName: 'Test Images',
  category: 'testing',
  description:
    'Makes `frames` grey frames [F,16,16,3] whose level follows `index`; runs imageHooks[hook] first.',
  inputs: {
    required: {
      index: input.link<number>('INT'),
      frames: input.int({ default: 2, min: 1, max: 64 }),
      delay_ms: input.int({ default: 0, min: 0, max: 10_000 }),
      hook: input.string({ default: '' }),
    },
  },
  outputs: [output<Tensor>('IMAGE', 'IMAGE')],
  async run({ index, frames, delay_ms, hook }, ctx) {
    await imageHooks.get(hook)?.(index);
    if (delay_ms > 0) await new Promise((r) => setTimeout(r, delay_ms));
    ctx.signal.throwIfAborted();
    const data = new Float32Array(frames * 16 * 16 * 3).fill(((index % 8) + 1) / 9);
    return { outputs: [{ data, shape: [frames, 16, 16, 3] }] };
  },
});

const crashNode = defineNode({
  name: 'TestCrash',
  displayName: 'Test Crash',
  category: 'testing',
  description: 'Output node that kills its own process with SIGKILL: a prompt that crashes the server.',
  outputNode: true,
  inputs: { required: { value: input.link<unknown>('*') } },
  outputs: [],
  run() {
    process.kill(process.pid, 'SIGKILL');
    return { outputs: [] };
  },
});

export function securityNodes(): AnyNodeDef[] {
  return [
    ...serverTestNodes(),
    loadVideoModelNode as AnyNodeDef,
    videoWriteNode as AnyNodeDef,
    imagesNode as AnyNodeDef,
    crashNode as AnyNodeDef,
  ];
}

/** LoopStart(iterations) → TestImages(index) → VideoWrite(format, prefix), as API format. */
export function videoPrompt(
  prefix: string,
  opts: { iterations?: number; delayMs?: number; hook?: string; format?: string } = {},
): Record<string, unknown> {
  return {
    '1': { class_type: 'LoopStart', inputs: { iterations: opts.iterations ?? 2 } },
    '2': {
      class_type: 'TestImages',
      inputs: { index: ['1', 1], frames: 2, delay_ms: opts.delayMs ?? 0, hook: opts.hook ?? '' },
    },
    '9': {
      class_type: 'VideoWrite',
      inputs: { images: ['2', 0], fps: 4, format: opts.format ?? 'gif', filename_prefix: prefix },
    },
    '4': { class_type: 'LoopEnd', inputs: { flow: ['1', 0] } },
  };
}

/**
 * POST /upload/image with a hand-built multipart body, so the file name reaches the server byte for
 * byte (FormData escapes some characters). `star` sends it as RFC 5987 `filename*=UTF-8''...`.
 */
export async function rawUpload(
  url: string,
  filename: string,
  opts: { fields?: Record<string, string>; star?: boolean; headers?: Record<string, string> } = {},
): Promise<{ status: number; body: Record<string, unknown> }> {
  const b = '----rdflowsecurityboundary';
  const disposition = opts.star
    ? `filename*=UTF-8''${encodeURIComponent(filename)}`
    : `filename="${filename.replaceAll('"', '%22')}"`;
  const parts: Buffer[] = [
    Buffer.from(
      `--${b}\r\nContent-Disposition: form-data; name="image"; ${disposition}\r\n` +
        'Content-Type: image/png\r\n\r\nPNGDATA\r\n',
    ),
  ];
  for (const [k, v] of Object.entries(opts.fields ?? {})) {
    parts.push(Buffer.from(`--${b}\r\nContent-Disposition: form-data; name="${k}"\r\n\r\n${v}\r\n`));
  }
  parts.push(Buffer.from(`--${b}--\r\n`));
  const res = await fetch(`${url}/upload/image`, {
    method: 'POST',
    headers: { 'content-type': `multipart/form-data; boundary=${b}`, ...opts.headers },
    body: Buffer.concat(parts),
  });
  const text = await res.text();
  let body: Record<string, unknown>;
  try {
    body = JSON.parse(text) as Record<string, unknown>;
  } catch {
    body = { text };
  }
  return { status: res.status, body };
}

/** A server over ROOT's folders in its own process, with the security tests' nodes. */
export function spawnServer(root: string, ...flags: string[]): Promise<SpawnedServer> {
  return spawnServerProcess(root, '--nodes', 'security', ...flags);
}
