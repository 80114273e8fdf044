// GET /object_info: every node type as ComfyUI describes it to editors and clients.
import { z } from 'zod';

/** An input's options: `{default, min, max, step, …}`; node types may add their own keys. */
export const InputOptionsSchema = z.looseObject({
  default: z.unknown().optional(),
  min: z.number().optional(),
  max: z.number().optional(),
  step: z.number().optional(),
  round: z.union([z.number(), z.literal(false)]).optional(),
  multiline: z.boolean().optional(),
  control_after_generate: z.boolean().optional(),
  tooltip: z.string().optional(),
});
export type InputOptions = z.infer<typeof InputOptionsSchema>;

/** One input: `["INT", {min, max}]`, `[["a", "b"], {default}]` (a combo), `["LATENT"]`. */
export const InputConfigSchema = z.tuple([
  z.union([z.string(), z.array(z.string())]),
  InputOptionsSchema.optional(),
]);
export type InputConfig = z.infer<typeof InputConfigSchema>;

const inputGroup = z.record(z.string(), InputConfigSchema);

/** One node type. */
export const NodeInfoSchema = z.object({
  name: z.string(),
  display_name: z.string().optional(),
  description: z.string().optional(),
  category: z.string().optional(),
  output_node: z.boolean().optional(),
  python_module: z.string().optional(),
  input: z.object({
    required: inputGroup.optional(),
    optional: inputGroup.optional(),
    hidden: z.record(z.string(), z.unknown()).optional(),
  }),
  input_order: z
    .object({ required: z.array(z.string()).optional(), optional: z.array(z.string()).optional() })
    .optional(),
  output: z.array(z.string()),
  output_name: z.array(z.string()).optional(),
  output_is_list: z.array(z.boolean()).optional(),
});
export type NodeInfo = z.infer<typeof NodeInfoSchema>;

/** Class name → its description. */
export const ObjectInfoSchema = z.record(z.string(), NodeInfoSchema);
export type ObjectInfo = z.infer<typeof ObjectInfoSchema>;
