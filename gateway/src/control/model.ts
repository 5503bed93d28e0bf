/**
 * The wall model and the deltas that change it. This file has no imports from the gateway so the
 * player and scripts can use its types and `applyDelta` as they are: a client that applies every
 * delta in version order holds the same wall as the server's snapshot.
 */

export type StreamProfile = 'main' | 'sub';

export interface ScreenGrid {
  /** Monitors down and across. */
  rows: number;
  cols: number;
  /** Each monitor's resolution in pixels. */
  width: number;
  height: number;
}

/** A grid over a region: `cells` are the tiles in order, each a rectangle of grid cells. */
export interface LayoutGrid {
  /** A named layout ('9', '1+5', ...) or 'custom'. */
  name: string;
  rows: number;
  cols: number;
  cells: TileCell[];
}

export interface TileCell {
  row: number;
  col: number;
  rowSpan: number;
  colSpan: number;
}

/** A layout covers one monitor, or the whole wall as one surface (region id 'wall'). */
export interface Region {
  /** 's1'..'sN' for monitor N (row-major, from 1), or 'wall'. */
  id: string;
  /** The monitors it covers, in monitor units. */
  screens: TileCell;
  layout: LayoutGrid;
}

export type TileContent =
  | { kind: 'empty' }
  | { kind: 'camera'; cameraId: string; profile: 'auto' | StreamProfile; name: string; departmentId: string; hasSub: boolean }
  | { kind: 'tour'; tourId: string };

export interface TileLock {
  userId: string;
  username: string;
  at: number;
}

export interface Tile extends TileCell {
  /** `<region>-<n>`, e.g. 's2-5': stable while the region keeps its layout. */
  id: string;
  region: string;
  /** Pixel size on the wall, which picks the stream profile. */
  width: number;
  height: number;
  content: TileContent;
  /** What the tile plays now: the camera, or the tour's current camera; null when empty. */
  stream: { cameraId: string; profile: StreamProfile; name: string; departmentId: string } | null;
  lock: TileLock | null;
  /** The alarm pop-up showing on this tile over its content, if any (the content comes back when it ends). */
  popup: string | null;
  /** The wall version that last changed this tile: a change based on an older version conflicts. */
  v: number;
  by: string;
  at: number;
}

export interface TourCamera {
  cameraId: string;
  name: string;
  departmentId: string;
  hasSub: boolean;
}

export interface Tour {
  id: string;
  name: string;
  /** The tiles it drives: each step fills them in order with the next cameras. */
  tileIds: string[];
  /** An explicit list, or a department (and optional tag) resolved when the tour starts. */
  source: { cameras: string[] } | { departmentId: string; tag: string | null };
  dwellSec: number;
  /** The current step, counted from 0 since the start. */
  step: number;
  stepStartedAt: number;
  /** How many cameras the source resolved to. */
  cameraCount: number;
  createdBy: string;
  v: number;
}

export interface PlanState {
  planId: string;
  name: string;
  priority: number;
  activatedBy: string;
  at: number;
}

/** A camera an alarm pop-up shows on one tile. */
export interface PopupCamera {
  cameraId: string;
  name: string;
  departmentId: string;
  hasSub: boolean;
}

/**
 * An alarm's cameras over reserved tiles of a wall. It covers each tile unless a pop-up of higher
 * priority (or of equal priority, raised earlier) is there; the tiles show their own content again when it ends.
 */
export interface Popup {
  /** Unique per alarm and linkage rule. */
  id: string;
  /** What the wall says, e.g. '粤A12345 collision warning'. */
  label: string;
  priority: number;
  /** Tile id → the camera it shows there. */
  tiles: Record<string, PopupCamera>;
  /** What raised it, for the console to link to. */
  alarmId: string;
  vehicleId: string;
  at: number;
}

export interface WallView {
  id: string;
  name: string;
  departmentId: string;
  screens: ScreenGrid;
  regions: Region[];
  tiles: Record<string, Tile>;
  tours: Record<string, Tour>;
  /** The emergency plan in force, if any. */
  plan: PlanState | null;
  /** Alarm pop-ups in force, by id. */
  popups: Record<string, Popup>;
  version: number;
  updatedAt: number;
  updatedBy: string;
}

/** A tile's changeable part: what a change to a tile carries, since its place and size change only with the layout. */
export type TileChange = Omit<Tile, 'region' | 'row' | 'col' | 'rowSpan' | 'colSpan' | 'width' | 'height'>;

/** The fields of a tile that only a layout sets. */
export const TILE_GEOMETRY = ['region', 'row', 'col', 'rowSpan', 'colSpan', 'width', 'height'] as const;

/** One acknowledged change, in version order. Keys that are present changed. */
export interface WallDelta {
  wallId: string;
  version: number;
  at: number;
  /** The user name, or 'tour' / 'system'. */
  by: string;
  /** The message type that caused it, e.g. 'tile.assign'. */
  cause: string;
  /** The id of the request that caused it, so its sender can match the delta to its own message. */
  ref: string | null;
  name?: string;
  /** A new layout; `tiles` then holds every tile of the wall. */
  regions?: Region[];
  tiles?: Tile[];
  /** Without a new layout: the tiles that changed, without the place and size they keep. */
  changes?: TileChange[];
  tours?: Tour[];
  removedTours?: string[];
  plan?: PlanState | null;
  popups?: Popup[];
  removedPopups?: string[];
}

export type TileStreamState = 'idle' | 'starting' | 'live' | 'retrying' | 'offline';

/** Why a tile shows what it shows; not versioned, sent as it changes. */
export interface TileStatus {
  state: TileStreamState;
  /** The last failure in English, as the gateway logs it. */
  reason: string | null;
  /** The same failure's GW_ERR_* code and parameters, which the player words in the page's language. */
  code: string | null;
  params: Record<string, string | number> | null;
  retryInMs: number | null;
}

/**
 * The pop-up a tile shows: the highest priority covering it, the earliest of equal priority.
 * Pop-ups are few (one per open alarm and rule), so a scan is cheap.
 */
export function popupOn(popups: Record<string, Popup>, tileId: string): Popup | null {
  let best: Popup | null = null;
  for (const p of Object.values(popups)) {
    if (!p.tiles[tileId]) continue;
    if (!best || p.priority > best.priority || (p.priority === best.priority && (p.at < best.at || (p.at === best.at && p.id < best.id)))) best = p;
  }
  return best;
}

/** Applies one delta; returns false (and leaves the wall alone) when it is not the next version or names an unknown tile. */
export function applyDelta(wall: WallView, d: WallDelta): boolean {
  if (d.wallId !== wall.id || d.version !== wall.version + 1) return false;
  if (!d.regions && d.changes?.some((c) => !wall.tiles[c.id])) return false;
  if (d.name !== undefined) wall.name = d.name;
  if (d.regions) {
    wall.regions = d.regions;
    wall.tiles = {};
  }
  for (const t of d.tiles ?? []) wall.tiles[t.id] = t;
  for (const c of d.changes ?? []) wall.tiles[c.id] = { ...wall.tiles[c.id]!, ...c };
  for (const t of d.tours ?? []) wall.tours[t.id] = t;
  for (const id of d.removedTours ?? []) delete wall.tours[id];
  if (d.plan !== undefined) wall.plan = d.plan;
  if (d.popups || d.removedPopups) wall.popups ??= {};
  for (const p of d.popups ?? []) wall.popups[p.id] = p;
  for (const id of d.removedPopups ?? []) delete wall.popups[id];
  wall.version = d.version;
  wall.updatedAt = d.at;
  wall.updatedBy = d.by;
  return true;
}
