// GET /workflows: the workflow files the editor's "Workflows…" list offers.
import { z } from 'zod';

export const WorkflowEntrySchema = z.object({
  /** File name, as GET /workflows/:name takes it. */
  name: z.string(),
  format: z.enum(['api', 'canvas']),
  /** The canvas file's `extra.title` when it has one. */
  title: z.string().optional(),
});
export type WorkflowEntry = z.infer<typeof WorkflowEntrySchema>;
