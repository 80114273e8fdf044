// Queue: the graph as an API prompt, checked as `rdflow run` checks it, posted to the server; what
// the server refuses is drawn on its nodes and named in a toast.
import type { LGraph, LGraphCanvas } from '@comfyorg/litegraph';
import { PromptRejectedError, type Api } from './api.ts';
import { describeNodeErrors, messageOf, toast } from './errors.ts';
import type { GraphDocument } from './graph-document.ts';
import { checkPromptTexts, type PromptProblem, type VocabularyOf } from './prompt-check.ts';
import { applySeedControls } from './registry.ts';
import type { RunState } from './run-state.ts';
import type { ApiPrompt, NodeErrors } from './types.ts';

export interface QueueActionOptions {
  api: Api;
  graph: LGraph;
  canvas: LGraphCanvas;
  state: RunState;
  doc: GraphDocument;
  toPrompt(): ApiPrompt;
  /** The words a model knows, where it knows only a few (from /object_info). */
  vocabularyOf: VocabularyOf;
  titleOf(nodeId: string): string;
  focusNode(nodeId: string): void;
  /** Redraws the canvas. */
  redraw(): void;
  /** Redraws the canvas and the run panel. */
  showRun(): void;
  /** Reads the queue again (the new prompt is in it). */
  refreshQueue(): Promise<void>;
}

/** The prompt checks' errors as the server's node errors, so they are drawn the same way. */
export function promptCheckErrors(errors: readonly PromptProblem[]): NodeErrors {
  const nodeErrors: NodeErrors = {};
  for (const e of errors) {
    (nodeErrors[e.nodeId] ??= { errors: [], dependent_outputs: [], class_type: e.classType }).errors.push({
      type: 'prompt_empty',
      message: e.message,
      details: '',
      extra_info: { input_name: e.input },
    });
  }
  return nodeErrors;
}

/**
 * A value still being typed in litegraph's text popup is the user's edit: queueing takes it as if
 * OK had been pressed, instead of posting the value from before the popup opened.
 */
function commitOpenPrompt(canvas: LGraphCanvas, doc: GraphDocument): void {
  const box = (canvas as unknown as { prompt_box?: HTMLElement | null }).prompt_box;
  box?.querySelector<HTMLButtonElement>('button')?.click();
  doc.commit();
}

/** Posts the graph; the function resolves to the prompt id, or undefined when it was refused. */
export function createQueueAction(o: QueueActionOptions): () => Promise<string | undefined> {
  const { api, state } = o;
  return async () => {
    commitOpenPrompt(o.canvas, o.doc);
    let prompt: ApiPrompt;
    try {
      prompt = o.toPrompt();
    } catch (e) {
      toast(messageOf(e), 'error');
      return undefined;
    }
    // The same checks as `rdflow run`: an empty positive prompt is not queued; words the demo model
    // does not know are named (its vocabulary comes in /object_info).
    const checked = checkPromptTexts(prompt, o.vocabularyOf);
    if (checked.errors.length > 0) {
      const nodeErrors = promptCheckErrors(checked.errors);
      state.reject(nodeErrors);
      toast(['Not queued:', ...describeNodeErrors(nodeErrors, o.titleOf)].join('\n'), 'error');
      o.focusNode(checked.errors[0].nodeId);
      o.showRun();
      return undefined;
    }
    for (const w of checked.warnings)
      toast(`#${w.nodeId} ${o.titleOf(w.nodeId)}: ${w.message}`, 'info', 8000);
    try {
      const { prompt_id } = await api.queuePrompt(prompt, { extra_pnginfo: { workflow: o.doc.serialize() } });
      state.begin(prompt_id);
      applySeedControls(o.graph);
      o.doc.commit();
      o.redraw();
      void o.refreshQueue();
      return prompt_id;
    } catch (e) {
      if (e instanceof PromptRejectedError) {
        state.reject(e.nodeErrors);
        const lines = describeNodeErrors(e.nodeErrors, o.titleOf);
        toast([e.message, ...lines].join('\n'), 'error');
        const first = Object.keys(e.nodeErrors)[0];
        if (first !== undefined) o.focusNode(first);
      } else toast(`Could not queue: ${messageOf(e)}`, 'error');
      o.showRun();
      return undefined;
    }
  };
}
