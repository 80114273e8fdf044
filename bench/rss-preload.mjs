// Preloaded into a measured child (`node --import`): at exit the main thread writes the process's
// peak RSS in KiB to $RDFLOW_BENCH_RSS_FILE. A preload measures any command, rdflow's own CLI
// included, without changing it. VmHWM, not resourceUsage().maxRSS: Linux carries ru_maxrss over
// exec from the forking parent, so a child of a big parent would report the parent's size.
import { readFileSync, writeFileSync } from 'node:fs';
import { isMainThread } from 'node:worker_threads';

const file = process.env.RDFLOW_BENCH_RSS_FILE;
if (file && isMainThread) {
  process.on('exit', () => {
    const hwm = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync('/proc/self/status', 'utf8'));
    writeFileSync(file, hwm ? hwm[1] : '');
  });
}
