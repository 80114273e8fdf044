// The command line of scale-out: `rdflow worker` and `rdflow serve --queue/--workers`, their help
// and usage mistakes (no Redis needed: each is refused before anything connects).
import { describe, expect, test } from 'vitest';
import { runCli } from '../../server/cli.ts';
import { captureOutput } from '../helpers/cli-output.ts';

async function cli(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const stdout = captureOutput();
  const stderr = captureOutput();
  const code = await runCli(argv, { stdout, stderr });
  return { code, out: stdout.text(), err: stderr.text() };
}

describe('rdflow worker and serve --queue', () => {
  test('help lists the command and its flags', async () => {
    expect((await cli(['help'])).out).toMatch(/^ {2}worker {2,}run prompts from a shared Redis queue/m);
    const worker = await cli(['worker', '--help']);
    for (const flag of ['--queue', '--output-dir', '--data-dir', '--models-dir', 'RDFLOW_QUEUE_LOCK_MS'])
      expect(worker.out).toContain(flag);
    const serve = await cli(['serve', '--help']);
    for (const flag of ['--queue', '--workers']) expect(serve.out).toContain(flag);
  });

  test('usage mistakes are named, exit 2, and a password in a bad URL is never shown', async () => {
    const noQueue = await cli(['worker']);
    expect(noQueue.code).toBe(2);
    expect(noQueue.err).toContain('rdflow worker needs --queue redis://');
    const workersAlone = await cli(['serve', '--workers', '0']);
    expect(workersAlone.code).toBe(2);
    expect(workersAlone.err).toContain('--workers needs --queue');
    const many = await cli(['serve', '--queue', 'redis://127.0.0.1:1/0', '--workers', '2']);
    expect(many.code).toBe(2);
    expect(many.err).toContain('--workers 2: 0 (API only) or 1');
    const bad = await cli(['worker', '--queue', 'redis://:hunter2@cache:6379/x']);
    expect(bad.code).toBe(2);
    expect(bad.err).toContain('--queue: Invalid Redis URL redis://***@cache:6379/x');
    expect(bad.err).not.toContain('hunter2');
    const scheme = await cli(['worker', '--queue', 'http://:hunter2@cache']);
    expect(scheme.err).toContain('the scheme must be redis: or rediss:');
    expect(scheme.err).not.toContain('hunter2');
  });
});
