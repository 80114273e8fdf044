// Keyboard shortcuts (ComfyUI's) and dropping a workflow file on the canvas.
export interface ShortcutActions {
  queue(): void;
  undo(): void;
  redo(): void;
  save(): void;
  group(): void;
  toggleMute(): void;
  toggleBypass(): void;
}

/** Ctrl/Cmd + Enter, Z, Y (or Shift+Z), S, G, M, B; ignored while typing in a text field. */
export function installShortcuts(a: ShortcutActions): void {
  document.addEventListener('keydown', (e) => {
    const target = e.target as HTMLElement | null;
    if (target !== null && ['INPUT', 'TEXTAREA', 'SELECT'].includes(target.tagName)) return;
    if (!(e.ctrlKey || e.metaKey)) return;
    const byKey = new Map<string, () => void>([
      ['enter', a.queue],
      ['z', e.shiftKey ? a.redo : a.undo],
      ['y', a.redo],
      ['s', a.save],
      ['g', a.group],
      ['m', a.toggleMute],
      ['b', a.toggleBypass],
    ]);
    const action = byKey.get(e.key.toLowerCase());
    if (action === undefined) return;
    e.preventDefault();
    action();
  });
}

/** A file dropped anywhere on `target` is handed to `open`; the target is outlined while dragging. */
export function installDropTarget(target: HTMLElement, open: (file: File) => void): void {
  target.addEventListener('dragover', (e) => {
    e.preventDefault();
    target.classList.add('drop-target');
  });
  target.addEventListener('dragleave', () => target.classList.remove('drop-target'));
  target.addEventListener('drop', (e) => {
    e.preventDefault();
    target.classList.remove('drop-target');
    const file = e.dataTransfer?.files[0];
    if (file !== undefined) open(file);
  });
}
