// Telling a running process from one that has exited, for files tagged with the pid that made them.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { describe, expect, it } from 'vitest';
import { leftByDeadProcess, processAlive } from '../../server/core/process.ts';

/** The pid of a child that has exited (and been reaped, so the id names no process now). */
async function exitedPid(): Promise<number> {
  const child = spawn('sh', ['-c', 'exit 0'], { stdio: 'ignore' });
  await once(child, 'exit');
  return child.pid as number;
}

describe('processAlive / leftByDeadProcess', () => {
  it('a running process is alive and nothing it left is stale', async () => {
    expect(processAlive(process.pid)).toBe(true);
    expect(leftByDeadProcess(process.pid)).toBe(false); // ours, even though alive
    const child = spawn('sleep', ['60'], { stdio: 'ignore' });
    try {
      expect(processAlive(child.pid as number)).toBe(true);
      expect(leftByDeadProcess(child.pid as number)).toBe(false);
    } finally {
      child.kill('SIGKILL');
      await once(child, 'exit');
    }
  });

  it('what an exited process left is stale', async () => {
    const pid = await exitedPid();
    expect(processAlive(pid)).toBe(false);
    expect(leftByDeadProcess(pid)).toBe(true);
  });

  it('an id that names no process (0, negative, NaN, fraction) is neither alive nor known dead', () => {
    for (const pid of [0, -1, Number.NaN, 1.5]) {
      expect(processAlive(pid)).toBe(false);
      expect(leftByDeadProcess(pid)).toBe(false);
    }
  });
});
