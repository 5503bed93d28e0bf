/**
 * What the console's panels share: the connection, the followed wall, the tile selection, the camera
 * picked for click-to-assign, the tour list and the department filter. Panels talk to each other only
 * through these values and signals, so each can be read (and replaced) on its own.
 */
import type { TileStatus, WallView } from '../../../gateway/src/control/model.js';
import type { SessionUser } from '../lib/api.js';
import type { ControlConnection, WallChange, WallFollower } from '../lib/control.js';
import type { DepartmentNode } from '../lib/departments.js';
import { h, toast } from '../lib/dom.js';

export class Signal<T> {
  private readonly hooks = new Set<(value: T) => void>();

  on(hook: (value: T) => void): () => void {
    this.hooks.add(hook);
    return () => this.hooks.delete(hook);
  }

  emit(value: T): void {
    for (const hook of this.hooks) hook(value);
  }
}

/** A value that says when it changes. */
export class Store<T> extends Signal<T> {
  constructor(private current: T) {
    super();
  }

  get value(): T {
    return this.current;
  }

  set(value: T): void {
    this.current = value;
    this.emit(value);
  }
}

export interface CameraRef {
  cameraId: string;
  name: string;
  departmentName?: string;
}

export type Presets = WallFollower['presets'];
export type OutcomeKind = 'info' | 'ok' | 'error';

export interface ConsoleContext {
  readonly conn: ControlConnection;
  readonly user: SessionUser;
  departmentName(id: string): string;
  /** The wall as the console holds it now (null before one is chosen, or once it is gone). */
  wall(): WallView | null;
  readonly wallChanged: Signal<WallChange>;
  /** Tile ids whose stream status changed. */
  readonly statusChanged: Signal<string[]>;
  readonly presetsChanged: Signal<Presets>;
  /** The followed wall is gone or another one is being loaded: panels drop what they show. */
  readonly wallCleared: Signal<void>;
  /** The gateway's view of a tile's stream ('idle' when it has said nothing yet). */
  statusOf(tileId: string): TileStatus;
  readonly selection: Store<ReadonlySet<string>>;
  /** A camera chosen in the search, waiting for a click on a tile (for keyboard and touch users). */
  readonly picked: Store<CameraRef | null>;
  /** Cameras collected for the next tour. */
  readonly tourList: Store<readonly CameraRef[]>;
  readonly department: Store<DepartmentNode | null>;
  /** Tells the operator how an action went, where the eye is: above the miniature. */
  notify(message: string, kind?: OutcomeKind): void;
}

/** The outcome line above the miniature; errors also go to a toast, which stays until read. */
export function outcomeLine(): { el: HTMLElement; show(message: string, kind: OutcomeKind): void } {
  const el = h('div', { class: 'console-outcome', role: 'status', 'aria-live': 'polite', dataset: { role: 'outcome', kind: 'info' } });
  let clearTimer: ReturnType<typeof setTimeout> | undefined;
  return {
    el,
    show(message, kind) {
      clearTimeout(clearTimer);
      el.dataset.kind = kind;
      el.textContent = message;
      if (kind === 'error') toast(message, 'error');
      // Success fades so the line does not claim something stale; an error stays until the next outcome.
      else clearTimer = setTimeout(() => (el.textContent = ''), 8_000);
    },
  };
}

export const CAMERA_MIME = 'application/x-wallgate-camera';

/** Makes an element a drag source for a camera, to drop on a tile of the miniature. */
export function draggableCamera(el: HTMLElement, camera: CameraRef): void {
  el.draggable = true;
  el.addEventListener('dragstart', (e) => {
    if (!e.dataTransfer) return;
    e.dataTransfer.setData(CAMERA_MIME, JSON.stringify(camera));
    e.dataTransfer.setData('text/plain', camera.cameraId);
    e.dataTransfer.effectAllowed = 'copy';
    document.body.classList.add('dragging-camera');
  });
  el.addEventListener('dragend', () => document.body.classList.remove('dragging-camera'));
}

/** The camera carried by a drop, or null for anything else dragged in (a file, a text). */
export function droppedCamera(e: DragEvent): CameraRef | null {
  const raw = e.dataTransfer?.getData(CAMERA_MIME);
  if (!raw) return null;
  try {
    const c = JSON.parse(raw) as CameraRef;
    return typeof c.cameraId === 'string' && c.cameraId ? c : null;
  } catch {
    return null;
  }
}
