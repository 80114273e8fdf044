// A CliOutput that keeps what rdflow writes, for tests that run the CLI in-process.
import type { CliOutput } from '../../server/cli.ts';

export interface CapturedOutput extends CliOutput {
  /** Everything written so far. */
  text(): string;
}

/** `isTTY` draws progress bars as on a terminal (200 columns); `onText` sees each write. */
export function captureOutput(opts: { isTTY?: boolean; onText?: (s: string) => void } = {}): CapturedOutput {
  let text = '';
  return {
    isTTY: opts.isTTY ?? false,
    columns: 200,
    write(s: string) {
      text += s;
      opts.onText?.(s);
      return true;
    },
    text: () => text,
  };
}
