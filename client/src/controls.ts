// What people act with beside the canvas: the toolbar, the keyboard shortcuts and a workflow file
// dropped on the canvas, each bound to the editor's actions.
import type { Api } from './api.ts';
import { messageOf, toast } from './errors.ts';
import type { GraphDocument } from './graph-document.ts';
import type { RunState } from './run-state.ts';
import { installDropTarget, installShortcuts } from './shortcuts.ts';
import { buildToolbar } from './toolbar.ts';
import type { ApiPrompt } from './types.ts';
import { downloadJson, readJsonFile } from './workflows.ts';

export interface ControlsOptions {
  api: Api;
  state: RunState;
  doc: GraphDocument;
  toolbar: HTMLElement;
  /** Where a dropped file is taken. */
  dropTarget: HTMLElement;
  queue(): void;
  toPrompt(): ApiPrompt;
  openShipped(name: string): Promise<void>;
  fitView(): void;
  groupSelection(): void;
  toggleMute(): void;
  toggleBypass(): void;
}

export function installControls(o: ControlsOptions): void {
  const { api, doc } = o;
  const openFile = async (file: File): Promise<void> => {
    try {
      doc.loadWorkflow(await readJsonFile(file), file.name);
      toast(`Opened ${file.name}`, 'success');
    } catch (e) {
      toast(`Could not open ${file.name}: ${messageOf(e)}`, 'error');
    }
  };
  const save = (): void => downloadJson('workflow.json', doc.serialize());

  buildToolbar(o.toolbar, {
    queue: o.queue,
    interrupt: () => void api.interrupt(o.state.promptId).catch((e: unknown) => toast(messageOf(e), 'error')),
    save,
    exportApi: () => {
      try {
        downloadJson('workflow_api.json', o.toPrompt());
      } catch (e) {
        toast(messageOf(e), 'error');
      }
    },
    open: (file) => void openFile(file),
    listWorkflows: () => api.listWorkflows(),
    openShipped: (name) => void o.openShipped(name).catch((e: unknown) => toast(messageOf(e), 'error')),
    undo: doc.undo,
    redo: doc.redo,
    fitView: o.fitView,
  });

  installShortcuts({
    queue: o.queue,
    undo: doc.undo,
    redo: doc.redo,
    save,
    group: o.groupSelection,
    toggleMute: o.toggleMute,
    toggleBypass: o.toggleBypass,
  });

  installDropTarget(o.dropTarget, (file) => void openFile(file));
}
