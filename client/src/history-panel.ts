// The side panel's history: past prompts (GET /history, newest first) with their status and the
// files they wrote, each with a Load button that puts that prompt's graph on the canvas. The newest
// entry's video plays at the top, so opening the editor shows the latest output, whoever queued it.
import type { Api } from './api.ts';
import { el } from './dom.ts';
import { messageOf, toast } from './errors.ts';
import { filesOf } from './output.ts';
import type { FileRef, HistoryEntry } from './types.ts';

const VIDEO = /\.(mp4|webm|mov|mkv)$/i;
const SHOWN = 20;

/** Every file a history entry's outputs list, in node order. */
export function entryFiles(entry: HistoryEntry): FileRef[] {
  return Object.values(entry.outputs ?? {}).flatMap((o) => filesOf(o));
}

/** The graph to load for a past prompt: the editor's own workflow when it sent one, else the API prompt. */
export function entryGraph(entry: HistoryEntry): unknown {
  const extra = entry.prompt[3] as { extra_pnginfo?: { workflow?: unknown } } | undefined;
  return extra?.extra_pnginfo?.workflow ?? entry.prompt[2];
}

export class HistoryPanel {
  private readonly latest = el('div', 'latest-output');
  private readonly list = el('ul', 'history-list');
  private shownKey = '';

  constructor(
    root: HTMLElement,
    private readonly api: Api,
    private readonly load: (graph: unknown, name: string) => void,
  ) {
    this.latest.id = 'latest-output';
    this.list.id = 'history-list';
    root.append(el('h2', undefined, 'Latest output'), this.latest, el('h2', undefined, 'History'), this.list);
  }

  /** Reloads the list from GET /history (the newest SHOWN prompts). */
  async refresh(): Promise<void> {
    let all: Record<string, HistoryEntry>;
    try {
      all = await this.api.history(SHOWN);
    } catch (e) {
      toast(`Could not read the history: ${messageOf(e)}`, 'error');
      return;
    }
    const entries = Object.entries(all).reverse();
    // Redrawing restarts the video: only when the list changed.
    const key = entries.map(([id, e]) => `${id}:${e.status?.status_str ?? ''}`).join(',');
    if (key === this.shownKey) return;
    this.shownKey = key;
    this.showLatest(entries.find(([, e]) => entryFiles(e).length > 0)?.[1]);
    this.list.replaceChildren();
    if (entries.length === 0) this.list.append(el('li', 'queue-empty', 'none'));
    for (const [id, entry] of entries) this.list.append(this.item(id, entry));
  }

  private showLatest(entry: HistoryEntry | undefined): void {
    this.latest.replaceChildren();
    const files = entry === undefined ? [] : entryFiles(entry);
    if (files.length === 0) {
      this.latest.append(el('span', 'queue-empty', 'none yet'));
      return;
    }
    const file = files.find((f) => VIDEO.test(f.filename)) ?? files[0];
    const url = this.api.viewUrl(file);
    if (VIDEO.test(file.filename)) {
      const video = el('video');
      Object.assign(video, { src: url, muted: true, loop: true, autoplay: true, controls: true });
      video.playsInline = true;
      this.latest.append(video);
    } else {
      const img = el('img');
      img.src = url;
      img.alt = file.filename;
      this.latest.append(img);
    }
    const link = el('a', 'history-file', file.filename);
    link.href = url;
    link.target = '_blank';
    this.latest.append(link);
  }

  private item(id: string, entry: HistoryEntry): HTMLLIElement {
    const li = el('li', 'history-item');
    li.dataset.promptId = id;
    const status = entry.status?.status_str ?? (entry.status?.completed ? 'success' : 'unknown');
    const head = el('div', 'history-head');
    head.append(el('span', `history-status ${status}`, `#${entry.prompt[0]} · ${status}`));
    const load = el('button', 'history-load', 'Load');
    load.title = "Put this prompt's graph on the canvas";
    load.addEventListener('click', () => {
      try {
        this.load(entryGraph(entry), `prompt ${id.slice(0, 8)}`);
      } catch (e) {
        toast(`Could not load that prompt: ${messageOf(e)}`, 'error');
      }
    });
    head.append(load);
    li.append(head);
    for (const file of entryFiles(entry)) {
      const a = el('a', 'history-file', file.filename);
      a.href = this.api.viewUrl(file);
      a.target = '_blank';
      li.append(a);
    }
    return li;
  }
}
