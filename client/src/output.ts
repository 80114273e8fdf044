// What nodes produced: preview images (binary WebSocket frames, drawn on the canvas under the
// node's widgets) and finished files (a real <video>/<img> element laid over the node, kept in
// place as the canvas pans and zooms, with a link that opens the file).
import type { LGraph, LGraphCanvas, LGraphNode } from '@comfyorg/litegraph';
import { ensureMediaSpace, mediaArea } from './decorations.ts';
import type { FileRef, PreviewImage } from './types.ts';

const VIDEO_EXTENSIONS = /\.(mp4|webm|mov|mkv)$/i;

interface Overlay {
  root: HTMLDivElement;
  media: HTMLVideoElement | HTMLImageElement;
  aspect: number;
}

function isFileRef(v: unknown): v is FileRef {
  return v !== null && typeof v === 'object' && typeof (v as FileRef).filename === 'string';
}

/** The files a node's UI output lists under `images` (videos included, as ComfyUI lists them). */
export function filesOf(output: Record<string, unknown[]>): FileRef[] {
  return [...(output.images ?? []), ...(output.gifs ?? []), ...(output.videos ?? [])].filter(isFileRef);
}

export class OutputView {
  private readonly previews = new Map<string, { url: string; image: HTMLImageElement }>();
  private readonly overlays = new Map<string, Overlay>();
  private frame = 0;

  constructor(
    private readonly host: HTMLElement,
    private readonly canvas: LGraphCanvas,
    private readonly viewUrl: (file: FileRef) => string,
    private readonly graph: () => LGraph,
  ) {}

  preview(nodeId: string): HTMLImageElement | undefined {
    return this.previews.get(nodeId)?.image;
  }

  hasOverlay(nodeId: string): boolean {
    return this.overlays.has(nodeId);
  }

  /** Shows a preview image on a node (the newest replaces the previous one). */
  setPreview(node: LGraphNode, image: PreviewImage): void {
    const id = String(node.id);
    const url = URL.createObjectURL(image.blob);
    const img = new Image();
    img.onload = () => {
      ensureMediaSpace(node, img.naturalWidth / img.naturalHeight);
      this.canvas.setDirty(true, true);
    };
    img.src = url;
    const old = this.previews.get(id);
    if (old !== undefined) URL.revokeObjectURL(old.url);
    this.previews.set(id, { url, image: img });
  }

  /** A node finished with files: its last file is shown in place (video, or image for gif/webp/png). */
  showFiles(node: LGraphNode, files: FileRef[]): void {
    const file = files[files.length - 1];
    if (file === undefined) return;
    const id = String(node.id);
    this.removeOverlay(id);
    const src = this.viewUrl(file);
    const root = document.createElement('div');
    root.className = 'media-overlay';
    root.dataset.nodeId = id;
    let media: HTMLVideoElement | HTMLImageElement;
    if (VIDEO_EXTENSIONS.test(file.filename)) {
      const video = document.createElement('video');
      // Muted autoplay is allowed without a user gesture; loop so a short clip keeps playing.
      video.muted = true;
      video.autoplay = true;
      video.loop = true;
      video.playsInline = true;
      video.controls = true;
      video.preload = 'auto';
      video.src = src;
      video.addEventListener('loadedmetadata', () => this.fit(id, video.videoWidth / video.videoHeight));
      media = video;
    } else {
      const img = document.createElement('img');
      img.alt = file.filename;
      img.src = src;
      img.addEventListener('load', () => this.fit(id, img.naturalWidth / img.naturalHeight));
      media = img;
    }
    const link = document.createElement('a');
    link.href = src;
    link.target = '_blank';
    link.rel = 'noopener';
    link.className = 'media-link';
    link.textContent = `${file.subfolder ? `${file.subfolder}/` : ''}${file.filename}`;
    link.title = 'Open the file';
    root.append(media, link);
    this.host.append(root);
    this.overlays.set(id, { root, media, aspect: 1 });
    ensureMediaSpace(node, 1);
    this.schedule();
  }

  /** Drops everything shown (a new workflow was loaded). */
  clear(): void {
    for (const id of [...this.overlays.keys()]) this.removeOverlay(id);
    for (const { url } of this.previews.values()) URL.revokeObjectURL(url);
    this.previews.clear();
  }

  private fit(id: string, aspect: number): void {
    const overlay = this.overlays.get(id);
    const node = this.graph().getNodeById(id);
    if (overlay === undefined || node === null || !(aspect > 0)) return;
    overlay.aspect = aspect;
    ensureMediaSpace(node, aspect);
    this.canvas.setDirty(true, true);
    this.schedule();
  }

  private removeOverlay(id: string): void {
    const overlay = this.overlays.get(id);
    if (overlay === undefined) return;
    if (overlay.media instanceof HTMLVideoElement) {
      overlay.media.pause();
      overlay.media.removeAttribute('src');
    }
    overlay.root.remove();
    this.overlays.delete(id);
  }

  /** Keeps overlays on their nodes while the canvas moves; runs only while there are overlays. */
  private schedule(): void {
    if (this.frame !== 0) return;
    const tick = (): void => {
      this.frame = 0;
      this.position();
      if (this.overlays.size > 0) this.frame = requestAnimationFrame(tick);
    };
    this.frame = requestAnimationFrame(tick);
  }

  private position(): void {
    const ds = this.canvas.ds;
    const el = this.canvas.canvas;
    // The canvas may be drawn at device-pixel resolution; overlays live in CSS pixels.
    const ratio = el.clientWidth > 0 ? el.width / el.clientWidth / (window.devicePixelRatio || 1) : 1;
    for (const [id, overlay] of this.overlays) {
      const node = this.graph().getNodeById(id);
      if (node === null) {
        this.removeOverlay(id);
        continue;
      }
      const area = mediaArea(node);
      const caption = 22;
      if (node.collapsed || area.h < caption + 20) {
        overlay.root.style.display = 'none';
        continue;
      }
      const [x, y] = ds.convertOffsetToCanvas([node.pos[0] + area.x, node.pos[1] + area.y]);
      const scale = ds.scale / ratio;
      Object.assign(overlay.root.style, {
        display: 'flex',
        left: `${x / ratio}px`,
        top: `${y / ratio}px`,
        width: `${area.w}px`,
        height: `${area.h}px`,
        transform: `scale(${scale})`,
      });
    }
  }
}
