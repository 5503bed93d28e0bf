/**
 * The current picture of each live tile of the miniature, refreshed every few seconds while the page
 * is visible. Only tiles the wall already plays are asked for, and with `ifLive`: a thumbnail never
 * starts a pull (the gateway answers 204 for a camera that stopped meanwhile). A tile that changes
 * camera or stops being live loses its picture and its request in flight; a hidden page asks nothing.
 */
import { BlobPicture, fetchSnapshot, RequestSlots, snapshotWidth } from '../lib/snapshots.js';

/** A wall changes what it shows every few seconds at most; the gateway caches a decode for 2 s. */
const REFRESH_MS = 3_000;
/** Requests at once: a 36-tile wall refreshes in turns instead of queueing 36 decodes together. */
const IN_FLIGHT = 3;

export interface LiveStreamRef {
  cameraId: string;
  profile: 'main' | 'sub';
}

interface Entry {
  /** camera/profile while the tile is live, '' otherwise. */
  key: string;
  stream: LiveStreamRef | null;
  picture: BlobPicture;
  box: HTMLElement;
  abort: AbortController | null;
}

export class TilePictures {
  private readonly entries = new Map<string, Entry>();
  private readonly slots = new RequestSlots(IN_FLIGHT);
  private timer: ReturnType<typeof setInterval> | undefined;

  constructor() {
    document.addEventListener('visibilitychange', () => this.onVisibility());
    this.onVisibility();
  }

  /**
   * What tile `tileId` plays now: `stream` when the gateway says it is live, null otherwise. `img`
   * shows its picture; `box` is the tile, whose width picks the picture's.
   */
  set(tileId: string, img: HTMLImageElement, box: HTMLElement, stream: LiveStreamRef | null): void {
    let entry = this.entries.get(tileId);
    if (!entry) {
      entry = { key: '', stream: null, picture: new BlobPicture(img), box, abort: null };
      this.entries.set(tileId, entry);
    }
    const key = stream ? `${stream.cameraId}/${stream.profile}` : '';
    if (key === entry.key) return;
    this.drop(entry);
    entry.key = key;
    entry.stream = stream;
    if (stream && document.visibilityState === 'visible') this.refresh(entry);
  }

  remove(tileId: string): void {
    const entry = this.entries.get(tileId);
    if (!entry) return;
    this.drop(entry);
    this.entries.delete(tileId);
  }

  clear(): void {
    for (const entry of this.entries.values()) this.drop(entry);
    this.entries.clear();
  }

  private drop(entry: Entry) {
    entry.abort?.abort();
    entry.abort = null;
    entry.picture.clear();
  }

  private onVisibility() {
    clearInterval(this.timer);
    this.timer = undefined;
    if (document.visibilityState !== 'visible') {
      // Nothing is asked for a page nobody sees; the pictures already shown stay until it is back.
      for (const entry of this.entries.values()) {
        entry.abort?.abort();
        entry.abort = null;
      }
      return;
    }
    this.tick();
    this.timer = setInterval(() => this.tick(), REFRESH_MS);
  }

  private tick() {
    for (const entry of this.entries.values()) if (entry.stream && !entry.abort) this.refresh(entry);
  }

  private refresh(entry: Entry) {
    const stream = entry.stream!;
    const abort = new AbortController();
    entry.abort = abort;
    const { signal } = abort;
    const current = () => entry.abort === abort;
    this.slots
      .run(signal, () => fetchSnapshot(stream.cameraId, { profile: stream.profile, width: snapshotWidth(entry.box.clientWidth), ifLive: true, signal }))
      .then(
        (blob) => {
          if (!current()) return;
          if (blob) entry.picture.show(blob);
          else entry.picture.clear();
        },
        () => {
          // A refusal or a network failure shows no picture rather than a stale one; the tile's state
          // badge says what the stream is doing, and the next round asks again.
          if (current() && !signal.aborted) entry.picture.clear();
        },
      )
      .finally(() => {
        if (current()) entry.abort = null;
      });
  }
}
