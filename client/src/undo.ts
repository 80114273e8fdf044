// Snapshot undo/redo: the serialized graph after each change. Snapshots are compared as strings,
// so an action that changed nothing (a click) records nothing.
export class UndoHistory {
  private readonly past: string[] = [];
  private readonly future: string[] = [];
  private current: string | undefined;

  constructor(private readonly limit = 100) {}

  /** Starts over from this state (a workflow was loaded). */
  reset(snapshot: string): void {
    this.past.length = 0;
    this.future.length = 0;
    this.current = snapshot;
  }

  /** Records the state after an edit; returns false if nothing changed. */
  record(snapshot: string): boolean {
    if (snapshot === this.current) return false;
    if (this.current !== undefined) this.past.push(this.current);
    if (this.past.length > this.limit) this.past.shift();
    this.future.length = 0;
    this.current = snapshot;
    return true;
  }

  /** The state to restore, or undefined when there is nothing to undo. */
  undo(): string | undefined {
    const previous = this.past.pop();
    if (previous === undefined || this.current === undefined) return undefined;
    this.future.push(this.current);
    this.current = previous;
    return previous;
  }

  redo(): string | undefined {
    const next = this.future.pop();
    if (next === undefined || this.current === undefined) return undefined;
    this.past.push(this.current);
    this.current = next;
    return next;
  }

  get canUndo(): boolean {
    return this.past.length > 0;
  }

  get canRedo(): boolean {
    return this.future.length > 0;
  }
}
