import { randomBytes } from 'node:crypto';
import { allows, type Permission } from '../../auth/roles.js';
import type { Config } from '../../config/schema.js';
import { GatewayError, ValidationError, reasoned } from '../../errors.js';
import type { Actor } from '../../registry/service.js';
import type { Role, TileRows } from '../../store/types.js';
import { TILE_GEOMETRY, type Region, type Tile, type TileChange, type TileContent, type TileLock, type Tour, type WallDelta, type WallView } from '../model.js';
import type { MessageType, Payload } from '../protocol.js';

/**
 * What the wall service's sections share: the wall as held in memory, the actor, the checks every
 * change runs, and the shape of a section's message handlers. No section imports another through here.
 */

export type ControlConfig = Config['control'];

/** Who is acting: a signed-in user (their roles decide what they may do) or the gateway itself. */
export interface ControlActor extends Actor {
  roles: Role[];
}

/** The state a preset or plan keeps, and a plan's revert restores. */
export interface SavedState {
  regions: Region[];
  contents: Record<string, TileContent>;
  locks: Record<string, TileLock>;
  tours: Tour[];
}

export interface WallEntry {
  doc: WallView;
  /** The state an active plan replaced, restored on revert. */
  planSaved: SavedState | null;
  /** What was last written (the wall without tiles, and each tile), to restore the in-memory wall if a change fails half-way. */
  json: string;
  tileJson: TileRows;
  /** Changes to one wall run one at a time, each written before the next starts. */
  queue: Promise<unknown>;
}

export interface AuditSpec {
  action: string;
  detail: Record<string, unknown>;
}

/** What a change returns: the tiles it touched in full; `commit` decides what of them goes out. */
export type DeltaParts = Omit<WallDelta, 'wallId' | 'version' | 'at' | 'by' | 'cause' | 'ref' | 'changes'>;

/** Changes the wall; what must happen only once the change is written (timers, caches) goes in `after`. */
export type Mutation = (doc: WallView, version: number, at: number, after: (() => void)[]) => DeltaParts;

export interface WallEvents {
  delta: [delta: WallDelta, json: string];
  /** Cluster mode: the wall was reloaded from the store past versions this node never emitted; its screens need a snapshot. */
  reset: [string];
  created: [string];
  removed: [string];
  presets: [string];
  /** An operator dismissed an alarm pop-up (its id). */
  popupEnded: [string];
}

export interface WallLog {
  warn(o: object, m: string): void;
  error(o: object, m: string): void;
}

/** Starts a camera's stream ahead of a tour rotation and holds it for a while. */
export interface Prewarmer {
  prewarm(cameraId: string, profile: 'main' | 'sub', holdMs: number): void;
}

/** One message type's handler, given its payload already checked against the protocol's schema. */
export type MessageHandler<T extends MessageType> = (actor: ControlActor, payload: Payload<T>, ref: string | null) => unknown;
/** The message types a section answers; the service composes the sections' tables. */
export type MessageHandlers = { [T in MessageType]?: MessageHandler<T> };

export const PERMISSION: Record<MessageType, Permission> = {
  'walls.list': 'walls:read',
  subscribe: 'walls:read',
  unsubscribe: 'walls:read',
  'presets.list': 'walls:read',
  'wall.create': 'walls:manage',
  'wall.delete': 'walls:manage',
  'wall.rename': 'walls:manage',
  'plan.save': 'walls:manage',
  'plan.delete': 'walls:manage',
  'popup.dismiss': 'walls:drive',
  'layout.set': 'walls:drive',
  'tile.assign': 'walls:drive',
  lock: 'walls:drive',
  unlock: 'walls:drive',
  'lock.break': 'walls:break-lock',
  'tour.start': 'walls:drive',
  'tour.stop': 'walls:drive',
  'preset.save': 'walls:drive',
  'preset.recall': 'walls:drive',
  'preset.delete': 'walls:drive',
  'plan.activate': 'walls:drive',
  'plan.revert': 'walls:drive',
};

export function requirePermission(actor: ControlActor, type: MessageType) {
  const permission = PERMISSION[type];
  if (!allows(actor.roles, permission)) throw reasoned('GW_ERR_FORBIDDEN', 'permission', { permission }, `your roles do not allow ${permission}`);
}

export const SYSTEM: ControlActor = { id: 'system', username: 'system', ip: '-', scopes: [], roles: [] };
export const shortId = (prefix: string) => `${prefix}-${randomBytes(5).toString('hex')}`;

/** A wall as stored: its document, and its tiles (one JSON each) put back in layout order. */
export function parseWall(json: string, tiles: TileRows): { doc: WallView; planSaved: SavedState | null } {
  const saved = JSON.parse(json) as { wall: WallView; planSaved: SavedState | null };
  // Walls stored before alarm pop-ups existed have none.
  saved.wall.popups ??= {};
  for (const region of saved.wall.regions) {
    region.layout.cells.forEach((_, i) => {
      const tile = tiles.get(`${region.id}-${i + 1}`);
      if (!tile) return;
      const parsed = JSON.parse(tile) as Tile;
      parsed.popup ??= null;
      saved.wall.tiles[`${region.id}-${i + 1}`] = parsed;
    });
  }
  return { doc: saved.wall, planSaved: saved.planSaved };
}

export function withoutGeometry(t: Tile): TileChange {
  const change: Partial<Tile> = { ...t };
  for (const key of TILE_GEOMETRY) delete change[key];
  return change as TileChange;
}

// ---- the checks a change runs inside its mutation ------------------------------------------------

export function conflict(entry: WallEntry, why: string) {
  return new GatewayError('GW_ERR_VERSION_CONFLICT', `${why}; here is the wall at version ${entry.doc.version}`, { current: structuredClone(entry.doc) });
}

export function checkBase(entry: WallEntry, baseVersion: number, tiles: Iterable<Tile>) {
  if (baseVersion > entry.doc.version) {
    throw new ValidationError([{ field: 'baseVersion', message: `is ahead of the wall, which is at version ${entry.doc.version}` }]);
  }
  for (const t of tiles) if (t.v > baseVersion) throw conflict(entry, `tile ${t.id} changed at version ${t.v}, after your version ${baseVersion}`);
}

/**
 * A tile under an alarm pop-up is not given other content: the operator would see nothing change,
 * and the alarm's video would be hidden later. Layouts, locks, presets and plans still apply.
 */
export function checkPopups(tiles: Iterable<Tile>) {
  for (const t of tiles) {
    if (t.popup) {
      throw reasoned('GW_ERR_LOCKED', 'popup', { tile: t.id, popup: t.popup }, `tile ${t.id} shows alarm pop-up ${t.popup}; dismiss it (popup.dismiss) or wait for the alarm to close`, {
        lock: { tileId: t.id, popup: t.popup },
      });
    }
  }
}

export function checkLocks(actor: ControlActor, tiles: Iterable<Tile>) {
  for (const t of tiles) {
    if (t.lock && t.lock.userId !== actor.id) {
      throw reasoned('GW_ERR_LOCKED', 'tile', { tile: t.id, user: t.lock.username }, `tile ${t.id} is locked by ${t.lock.username}`, { lock: { tileId: t.id, ...t.lock } });
    }
  }
}

export function tileOf(entry: WallEntry, tileId: string, field: string): Tile {
  const t = entry.doc.tiles[tileId];
  if (!t) throw new ValidationError([{ field, message: `the wall has no tile ${tileId}` }]);
  return t;
}

export function touch(t: Tile, version: number, at: number, by: string) {
  t.v = version;
  t.at = at;
  t.by = by;
}
