// The top bar: queue and stop, save/export/open, the server's workflows, undo/redo.
import type { WorkflowListEntry } from './api.ts';

export interface ToolbarActions {
  queue(): void;
  interrupt(): void;
  save(): void;
  exportApi(): void;
  open(file: File): void;
  /** The server's workflows folder (GET /workflows), read when the bar is built and on focus. */
  listWorkflows(): Promise<WorkflowListEntry[]>;
  openShipped(name: string): void;
  undo(): void;
  redo(): void;
  fitView(): void;
}

function button(label: string, title: string, onClick: () => void, id?: string): HTMLButtonElement {
  const b = document.createElement('button');
  b.type = 'button';
  b.textContent = label;
  b.title = title;
  if (id !== undefined) b.id = id;
  b.addEventListener('click', onClick);
  return b;
}

export function buildToolbar(root: HTMLElement, a: ToolbarActions): void {
  const brand = document.createElement('span');
  brand.className = 'brand';
  brand.textContent = 'rdflow';

  const file = document.createElement('input');
  file.type = 'file';
  file.accept = '.json,application/json';
  file.hidden = true;
  file.addEventListener('change', () => {
    const f = file.files?.[0];
    if (f !== undefined) a.open(f);
    file.value = '';
  });

  const list = document.createElement('select');
  list.id = 'workflow-list';
  list.title = "Open a workflow from the server's workflows folder";
  const placeholder = new Option('Workflows…', '');
  placeholder.disabled = true;
  list.append(placeholder);
  list.value = '';
  let shown = '';
  const refresh = (): void => {
    a.listWorkflows()
      .then((entries) => {
        // Rebuilt only when the folder changed, so an open dropdown is not disturbed.
        const key = JSON.stringify(entries);
        if (key === shown) return;
        shown = key;
        list.replaceChildren(
          placeholder,
          ...entries.map((w) => {
            const o = new Option(w.title ?? w.name, w.name);
            o.title = `${w.name} (${w.format} format)`;
            return o;
          }),
        );
        list.value = '';
      })
      .catch(() => {
        // The server is unreachable: keep the last list; the next focus tries again.
      });
  };
  refresh();
  list.addEventListener('focus', refresh);
  list.addEventListener('change', () => {
    if (list.value !== '') a.openShipped(list.value);
    list.value = '';
  });

  const queue = button('Queue', 'Queue the graph (Ctrl+Enter)', a.queue, 'queue-button');
  queue.classList.add('primary');
  const spacer = document.createElement('span');
  spacer.className = 'spacer';
  root.append(
    brand,
    queue,
    button('Stop', 'Interrupt the running prompt', a.interrupt, 'interrupt-button'),
    spacer,
    button('Undo', 'Undo (Ctrl+Z)', a.undo),
    button('Redo', 'Redo (Ctrl+Y)', a.redo),
    button('Fit', 'Fit the graph in view', a.fitView),
    button('Open…', 'Open a workflow file (canvas or API format); you can also drop it on the canvas', () =>
      file.click(),
    ),
    list,
    button('Save', 'Download the graph (canvas format, Ctrl+S)', a.save, 'save-button'),
    button('Export API', 'Download the prompt in API format', a.exportApi, 'export-api-button'),
    file,
  );
}
