// Resume and extend for loops: what the engine saves after each finished iteration of a top-level
// loop, and what a host gives back to continue from there. The engine decides *what* is saved (the
// carried values, the inputs the loop's output nodes received, and signatures that say whether a
// changed workflow would make the same clips); the host decides *where* (server/runs/store.ts).

/** The state of one loop after `next` finished iterations. */
export interface SavedLoop {
  /** Iterations finished: the run continues with iteration `next`. */
  next: number;
  /**
   * One signature per finished iteration: the signatures of the values carried out of it and of
   * every linked input of the body's output nodes. Equal signatures mean equal clips.
   */
  clipSigs: string[];
  /** Signatures of the values carried into iteration `next` (they keep downstream signatures). */
  carriedSigs: string[];
  /** The values carried into iteration `next`. */
  carried(): Promise<unknown[]>;
  /** What the body's output nodes received in iteration `c` (< next), by input signature. */
  outputInputs(c: number): Promise<Map<string, unknown>>;
}

/** What the engine hands over after iteration `iteration` of a loop finished. */
export interface IterationState {
  iteration: number;
  iterations: number;
  clipSig: string;
  carried: unknown[];
  carriedSigs: string[];
  /** Linked inputs of the body's output nodes this iteration, by signature (shared inputs once). */
  outputInputs: Map<string, unknown>;
}

/** The host's side: where loop states are loaded from and saved to. */
export interface LoopCheckpoints {
  /** The saved state of loop `loopId` (its LoopStart's id), or undefined to start at iteration 0. */
  load(loopId: string): Promise<SavedLoop | undefined>;
  /** Saves the state after an iteration; a loop's saves come in order and are awaited. */
  save(loopId: string, state: IterationState): Promise<void>;
  /**
   * Why resuming is refused: the workflow changed so that iteration `clip` (and the ones after it)
   * would differ from what was made. Says what differs; the engine adds which clip.
   */
  describeChange(loopId: string, clip: number): string;
}

/** Resuming would not continue the same video: the workflow changed where clips were already made. */
export class ResumeRefusedError extends Error {
  override name = 'ResumeRefusedError';
  constructor(
    message: string,
    readonly loopId: string,
    readonly clip: number,
  ) {
    super(message);
  }
}
