// Whether a process still runs, for files named after the process that made them (video temp
// files, the demo model's partial folder, the server's data-dir lock): what a dead process left
// behind is stale and can be removed or taken over.

/**
 * Whether `pid` names a running process (EPERM: it runs, as another user). A value that is not a
 * positive integer names no process (0 and negative ids would mean process groups to kill()).
 */
export function processAlive(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Whether something tagged with `pid` was left by another process that has exited: a valid id, not
 * this process, and not running. An unreadable id (NaN, 0) is not known to be dead: keep the thing.
 */
export function leftByDeadProcess(pid: number): boolean {
  return Number.isSafeInteger(pid) && pid > 0 && pid !== process.pid && !processAlive(pid);
}
