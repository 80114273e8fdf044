// The last graph, kept in localStorage so a reload (or a crash) brings the work back.
const KEY = 'rdflow.workflow';

export function saveWorkflow(workflow: unknown): void {
  try {
    localStorage.setItem(KEY, JSON.stringify(workflow));
  } catch {
    // Storage full or disabled (private mode): the editor still works, it just won't restore.
  }
}

export function loadSavedWorkflow(): unknown {
  try {
    const text = localStorage.getItem(KEY);
    return text === null ? undefined : (JSON.parse(text) as unknown);
  } catch {
    return undefined;
  }
}

export function clearSavedWorkflow(): void {
  try {
    localStorage.removeItem(KEY);
  } catch {
    // Nothing to clear when storage is unavailable.
  }
}
