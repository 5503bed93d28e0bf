/**
 * A picture on hover: resting the pointer on a camera of the search (or on a department of the tree)
 * for a moment, or reaching it with the keyboard, shows what it sees in a small popover beside it. Unlike the miniature's thumbnails, a
 * hover may start a short pull of an idle camera (no `ifLive`): the operator asked for this one
 * picture, and the gateway bounds it (one keyframe, counted against the caps, cached and shared).
 * Only cameras whose health is online are offered, and leaving ends the request.
 */
import { ApiError } from '../lib/api.js';
import { h } from '../lib/dom.js';
import { errorText } from '../lib/errors.js';
import { addStrings, t } from '../lib/i18n.js';
import { BlobPicture, fetchSnapshot, RequestSlots, snapshotWidth } from '../lib/snapshots.js';
import type { CameraRef } from './context.js';

addStrings({
  'preview.loading': ['Taking a picture…', '正在获取画面…'],
  'preview.failed': ['No picture: {reason}', '无法获取画面：{reason}'],
  'preview.none': ['No picture now', '暂无画面'],
});

/** Long enough that sweeping the pointer down a list asks for nothing. */
const REST_MS = 300;
/** A department shows this many of its online cameras: a glance, not a wall (each may start a pull). */
export const PREVIEW_CAMERAS = 4;
/** Requests at once for one popover. */
const IN_FLIGHT = 2;
/** The popover's picture width in CSS pixels (console.css, .camera-preview img). */
const PICTURE_CSS_WIDTH = { one: 256, many: 160 } as const;

type Loader = (signal: AbortSignal) => Promise<CameraRef[]>;

class CameraPreview {
  readonly el: HTMLDivElement;
  private readonly slots = new RequestSlots(IN_FLIGHT);
  private timer: ReturnType<typeof setTimeout> | undefined;
  private abort: AbortController | null = null;
  private pictures: BlobPicture[] = [];
  private anchor: HTMLElement | null = null;

  constructor() {
    this.el = h('div', { class: 'camera-preview', role: 'tooltip', hidden: true, dataset: { role: 'camera-preview' } });
    document.body.append(this.el);
    document.addEventListener('visibilitychange', () => this.hide());
  }

  attach(target: HTMLElement, load: Loader): void {
    const rest = () => {
      // Already shown or about to be (the pointer came to the row the keyboard is on, or the reverse).
      if (this.anchor === target) return;
      this.hide();
      this.anchor = target;
      this.timer = setTimeout(() => void this.open(target, load), REST_MS);
    };
    const leave = () => {
      if (this.anchor === target) this.hide();
    };
    target.addEventListener('mouseenter', rest);
    target.addEventListener('mouseleave', leave);
    // A keyboard user moving through the list gets the same; a click's focus is not a request to look.
    target.addEventListener('focusin', (e) => {
      if ((e.target as Element).matches(':focus-visible')) rest();
    });
    target.addEventListener('focusout', (e) => {
      if (!target.contains(e.relatedTarget as Node | null)) leave();
    });
    // Picking or dragging the camera is not looking at it.
    target.addEventListener('pointerdown', () => this.hide());
  }

  private hide() {
    clearTimeout(this.timer);
    this.abort?.abort();
    this.abort = null;
    this.anchor = null;
    for (const p of this.pictures) p.clear();
    this.pictures = [];
    this.el.hidden = true;
    this.el.replaceChildren();
  }

  private async open(target: HTMLElement, load: Loader) {
    // The list was redrawn under the pointer (a new search page, the tree's refresh).
    if (!target.isConnected) return this.hide();
    const abort = new AbortController();
    this.abort = abort;
    const { signal } = abort;
    this.el.replaceChildren(h('div', { class: 'preview-status muted' }, t('preview.loading')));
    this.place(target);
    let cameras: CameraRef[];
    try {
      cameras = (await load(signal)).slice(0, PREVIEW_CAMERAS);
    } catch (e) {
      if (signal.aborted) return;
      this.el.replaceChildren(h('div', { class: 'preview-status' }, t('preview.failed', { reason: errorText(e) })));
      return;
    }
    if (signal.aborted) return;
    if (cameras.length === 0) return this.hide();
    const width = snapshotWidth(cameras.length === 1 ? PICTURE_CSS_WIDTH.one : PICTURE_CSS_WIDTH.many);
    this.el.classList.toggle('many', cameras.length > 1);
    this.el.replaceChildren(...cameras.map((camera) => this.figure(camera, width, signal)));
    this.place(target);
  }

  private figure(camera: CameraRef, width: number, signal: AbortSignal): HTMLElement {
    const img = h('img', { alt: camera.name, hidden: true });
    const status = h('div', { class: 'preview-status muted' }, t('preview.loading'));
    const picture = new BlobPicture(img);
    this.pictures.push(picture);
    const fig = h('figure', { dataset: { camera: camera.cameraId, picture: 'loading' } }, h('div', { class: 'preview-frame' }, img, status), h('figcaption', null, camera.name));
    this.slots
      .run(signal, () => fetchSnapshot(camera.cameraId, { width, signal }))
      .then(
        (blob) => {
          if (signal.aborted) return;
          if (blob) picture.show(blob);
          status.textContent = blob ? '' : t('preview.none');
          fig.dataset.picture = blob ? 'shown' : 'none';
        },
        (e: unknown) => {
          if (signal.aborted) return;
          // Said quietly in the popover (the camera may be busy, offline or over a cap): nothing to act on.
          status.textContent = t('preview.failed', { reason: errorText(e) });
          fig.dataset.picture = 'failed';
          if (e instanceof ApiError) fig.dataset.code = e.code;
        },
      );
    return fig;
  }

  /** Beside the row, kept inside the window. */
  private place(target: HTMLElement) {
    this.el.hidden = false;
    const r = target.getBoundingClientRect();
    const box = this.el.getBoundingClientRect();
    const left = r.right + 8 + box.width <= innerWidth ? r.right + 8 : Math.max(0, r.left - 8 - box.width);
    const top = Math.max(0, Math.min(r.top, innerHeight - box.height - 4));
    this.el.style.left = `${left}px`;
    this.el.style.top = `${top}px`;
  }
}

let shared: CameraPreview | null = null;

/** Shows `load`'s cameras (at most PREVIEW_CAMERAS) in the console's one popover while the pointer rests on `target`. */
export function previewOnHover(target: HTMLElement, load: Loader): void {
  shared ??= new CameraPreview();
  shared.attach(target, load);
}
