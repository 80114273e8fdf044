// The prompt a client queues (ComfyUI's API format) and the errors a refused one comes back with.
import { z } from 'zod';

/** A link in API format: [source node id, output index]. */
export const LinkRefSchema = z.tuple([z.string(), z.number()]);
export type LinkRef = z.infer<typeof LinkRefSchema>;

/** One node of a prompt: its class and inputs (literals, links, or {__value__: [...]}). */
export const ApiNodeSchema = z.object({
  class_type: z.string(),
  inputs: z.record(z.string(), z.unknown()),
  _meta: z.object({ title: z.string().optional() }).optional(),
});

/** ComfyUI API format: node id → class_type and inputs. */
export const ApiPromptSchema = z.record(z.string(), ApiNodeSchema);
export type ApiPrompt = z.infer<typeof ApiPromptSchema>;

/** One problem found before running, in ComfyUI's terms. */
export const NodeErrorItemSchema = z.object({
  type: z.string(),
  message: z.string(),
  details: z.string(),
  extra_info: z.object({
    input_name: z.string().optional(),
    input_config: z.unknown().optional(),
    received_value: z.unknown().optional(),
    linked_node: LinkRefSchema.optional(),
  }),
});
export type NodeErrorItem = z.infer<typeof NodeErrorItemSchema>;

/** ComfyUI's node_errors: node id → its errors. */
export const NodeErrorsSchema = z.record(
  z.string(),
  z.object({
    errors: z.array(NodeErrorItemSchema),
    dependent_outputs: z.array(z.string()),
    class_type: z.string(),
  }),
);
export type NodeErrors = z.infer<typeof NodeErrorsSchema>;

/** Why a request or prompt was refused, as api.md's `error` field writes it. */
export const PromptErrorSchema = z.object({
  type: z.string(),
  message: z.string(),
  details: z.string(),
  extra_info: z.record(z.string(), z.unknown()),
});
export type PromptError = z.infer<typeof PromptErrorSchema>;

/** api.md's error answer: a top-level `error` tells clients the request failed. */
export const ErrorResponseSchema = z.object({ error: PromptErrorSchema, node_errors: NodeErrorsSchema });
export type ErrorResponse = z.infer<typeof ErrorResponseSchema>;

/** The error answer with no per-node errors (`details` empty unless given). */
export function errorResponse(
  type: string,
  message: string,
  details = '',
  nodeErrors: NodeErrors = {},
): ErrorResponse {
  return { error: { type, message, details, extra_info: {} }, node_errors: nodeErrors };
}

/** POST /prompt accepted the prompt. */
export const PromptAcceptedSchema = z.object({
  prompt_id: z.string(),
  number: z.number(),
  node_errors: NodeErrorsSchema,
});
export type PromptAccepted = z.infer<typeof PromptAcceptedSchema>;
