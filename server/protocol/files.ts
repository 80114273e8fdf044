// GET /workflows (the workflow files the editor offers) and POST /upload/image: files in and out.
import { z } from 'zod';

export const WorkflowEntrySchema = z.object({
  /** File name, as GET /workflows/:name takes it. */
  name: z.string(),
  format: z.enum(['api', 'canvas']),
  /** The canvas file's `extra.title` when it has one. */
  title: z.string().optional(),
});
export type WorkflowEntry = z.infer<typeof WorkflowEntrySchema>;

/** POST /upload/image: where the file landed, as /view and LoadImage-style inputs name it. */
export const UploadResultSchema = z.object({ name: z.string(), subfolder: z.string(), type: z.string() });
export type UploadResult = z.infer<typeof UploadResultSchema>;
