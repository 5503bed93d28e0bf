/**
 * Camera pictures in the pages: `GET /api/streams/:camera/snapshot.jpg` fetched with the bearer
 * header (an <img src> cannot carry it) and shown from a blob URL, a few requests at a time.
 */
import { apiBlob } from './api.js';

export interface SnapshotOptions {
  profile?: 'main' | 'sub';
  /** Pixels wide; the gateway keeps the camera's aspect ratio. */
  width?: number;
  /** Only from a stream already playing: the gateway answers 204 (null here) and starts nothing otherwise. */
  ifLive?: boolean;
  signal?: AbortSignal;
}

/** The picture as a JPEG blob, null when `ifLive` and the camera is not live; an ApiError when refused. */
export function fetchSnapshot(cameraId: string, opts: SnapshotOptions = {}): Promise<Blob | null> {
  const params = new URLSearchParams();
  if (opts.profile) params.set('profile', opts.profile);
  if (opts.width) params.set('width', String(opts.width));
  if (opts.ifLive) params.set('ifLive', '1');
  const query = params.toString() ? `?${params}` : '';
  return apiBlob(`/api/streams/${encodeURIComponent(cameraId)}/snapshot.jpg${query}`, { signal: opts.signal });
}

/** Widths asked for: a few steps, so consoles of nearby sizes share the gateway's cached decode. */
const WIDTH_STEPS = [160, 320, 480, 640] as const;

/** The step that fills `cssWidth` on this screen (its device pixels), at most the largest step. */
export function snapshotWidth(cssWidth: number): number {
  const pixels = cssWidth * (globalThis.devicePixelRatio || 1);
  return WIDTH_STEPS.find((w) => w >= pixels) ?? WIDTH_STEPS[WIDTH_STEPS.length - 1]!;
}

const aborted = () => new DOMException('aborted', 'AbortError');

/**
 * At most `size` jobs at once; the rest wait their turn in order. A job whose signal aborts while it
 * waits leaves the queue without running.
 */
export class RequestSlots {
  private running = 0;
  private readonly waiting: Array<{ start: () => void; signal: AbortSignal }> = [];

  constructor(private readonly size: number) {}

  run<T>(signal: AbortSignal, job: () => Promise<T>): Promise<T> {
    if (signal.aborted) return Promise.reject(aborted());
    return new Promise<T>((resolve, reject) => {
      const start = () => {
        signal.removeEventListener('abort', onAbort);
        this.running++;
        job()
          .then(resolve, reject)
          .finally(() => {
            this.running--;
            this.next();
          });
      };
      const entry = { start, signal };
      const onAbort = () => {
        const i = this.waiting.indexOf(entry);
        if (i >= 0) this.waiting.splice(i, 1);
        reject(aborted());
      };
      signal.addEventListener('abort', onAbort, { once: true });
      this.waiting.push(entry);
      this.next();
    });
  }

  private next() {
    while (this.running < this.size) {
      const entry = this.waiting.shift();
      if (!entry) return;
      if (!entry.signal.aborted) entry.start();
    }
  }
}

/**
 * One <img> showing blobs: each new picture's object URL replaces the last, which is revoked, so a
 * picture refreshed every few seconds for hours holds one blob, not thousands.
 */
export class BlobPicture {
  private url: string | null = null;

  constructor(readonly img: HTMLImageElement) {}

  show(blob: Blob): void {
    const previous = this.url;
    this.url = URL.createObjectURL(blob);
    this.img.src = this.url;
    this.img.hidden = false;
    if (previous) URL.revokeObjectURL(previous);
  }

  clear(): void {
    if (!this.url) return;
    URL.revokeObjectURL(this.url);
    this.url = null;
    this.img.removeAttribute('src');
    this.img.hidden = true;
  }
}
