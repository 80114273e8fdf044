// A model family: how its source checkpoints are recognised and converted. Adding a family means
// one folder under server/runtime/families/ with a module of this shape, listed in index.ts.
import type { ConversionPlan } from '../convert/plan.ts';

export interface ModelFamily {
  /** Short id recorded in converted folders (modelscope, vidrd). */
  readonly id: string;
  /** What users call it, with the public checkpoints it covers. */
  readonly label: string;
  /** Whether `dir` is a source checkpoint of this family (reads only small files). */
  recognise(dir: string): Promise<boolean>;
  /** The conversion of `dir` (configs parsed and checked; weights not read yet). */
  plan(dir: string): Promise<ConversionPlan>;
}
