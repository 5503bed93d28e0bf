import { Type, type Static } from '@sinclair/typebox';
import { literals, orNull, serverEnvelope } from '../lib/schema-check.js';
import { ERROR_PARAMS } from '../errors.js';
import type { Popup, PlanState, Region, Tile, TileChange, TileStatus, Tour, WallDelta, WallView } from './model.js';
import type { PresetView } from './walls/presets.js';

/**
 * What the server sends on the control WebSocket, as JSON Schemas: the answers to each message and
 * the walls' pushes. The frames are typed by these schemas (server.ts builds each through `frame`),
 * and model.ts's types, which stay free of imports for the player, are checked against them at the
 * end of this file, so /api/control/schema.json cannot drift from what is sent.
 */

const MS = Type.Integer({ description: 'ms since the epoch' });

const CELL = Type.Object({ row: Type.Integer(), col: Type.Integer(), rowSpan: Type.Integer(), colSpan: Type.Integer() });
const REGION = Type.Object({
  id: Type.String({ description: "'s1'..'sN' for monitor N, or 'wall'" }),
  screens: CELL,
  layout: Type.Object({ name: Type.String(), rows: Type.Integer(), cols: Type.Integer(), cells: Type.Array(CELL) }),
});
const PROFILE = literals(['main', 'sub'] as const);
const CAMERA = { cameraId: Type.String(), name: Type.String(), departmentId: Type.String(), hasSub: Type.Boolean() };
const CONTENT = Type.Union([
  Type.Object({ kind: Type.Literal('empty') }),
  Type.Object({ kind: Type.Literal('camera'), ...CAMERA, profile: literals(['auto', 'main', 'sub'] as const) }),
  Type.Object({ kind: Type.Literal('tour'), tourId: Type.String() }),
]);
const TILE_STATE = {
  id: Type.String({ description: '<region>-<n>' }),
  content: CONTENT,
  stream: orNull(Type.Object({ cameraId: Type.String(), profile: PROFILE, name: Type.String(), departmentId: Type.String() }, { description: 'what the tile plays now' })),
  lock: orNull(Type.Object({ userId: Type.String(), username: Type.String(), at: MS })),
  popup: orNull(Type.String({ description: 'the alarm pop-up shown over the content' })),
  v: Type.Integer({ description: 'the wall version that last changed the tile' }),
  by: Type.String(),
  at: MS,
};
const TILE_CHANGE = Type.Object(TILE_STATE, { description: "a tile's changeable part: its place and size change only with the layout" });
const TILE = Type.Object({ ...TILE_STATE, region: Type.String(), row: Type.Integer(), col: Type.Integer(), rowSpan: Type.Integer(), colSpan: Type.Integer(), width: Type.Integer(), height: Type.Integer() });
const TOUR = Type.Object({
  id: Type.String(),
  name: Type.String(),
  tileIds: Type.Array(Type.String()),
  source: Type.Union([Type.Object({ cameras: Type.Array(Type.String()) }), Type.Object({ departmentId: Type.String(), tag: orNull(Type.String()) })]),
  dwellSec: Type.Integer(),
  step: Type.Integer(),
  stepStartedAt: MS,
  cameraCount: Type.Integer(),
  createdBy: Type.String(),
  v: Type.Integer(),
});
const PLAN = Type.Object({ planId: Type.String(), name: Type.String(), priority: Type.Integer(), activatedBy: Type.String(), at: MS }, { description: 'the emergency plan in force' });
const POPUP = Type.Object({
  id: Type.String(),
  label: Type.String(),
  priority: Type.Integer(),
  tiles: Type.Record(Type.String(), Type.Object(CAMERA), { description: 'tile id → the camera shown there' }),
  alarmId: Type.String(),
  vehicleId: Type.String(),
  at: MS,
});

/** A wall as model.ts's WallView: what a snapshot, a subscription and the REST routes give. */
export const WALL_VIEW = Type.Object(
  {
    id: Type.String(),
    name: Type.String(),
    departmentId: Type.String(),
    screens: Type.Object({ rows: Type.Integer(), cols: Type.Integer(), width: Type.Integer(), height: Type.Integer() }),
    regions: Type.Array(REGION, { description: "each monitor's layout" }),
    tiles: Type.Record(Type.String(), TILE, { description: 'by tile id: where it is, what it plays, its lock' }),
    tours: Type.Record(Type.String(), TOUR),
    plan: orNull(PLAN),
    popups: Type.Record(Type.String(), POPUP, { description: 'alarm pop-ups in force' }),
    version: Type.Integer(),
    updatedAt: MS,
    updatedBy: Type.String(),
  },
  { description: 'a wall (control/model.ts WallView); docs/control-protocol.md shows each part' },
);

export const WALL_DELTA = Type.Object(
  {
    wallId: Type.String(),
    version: Type.Integer(),
    at: MS,
    by: Type.String({ description: "the user, or 'tour' / 'alarm' / 'system'" }),
    cause: Type.String({ description: "the message type, or 'tour.rotate', 'tour.resume', 'popup.show', 'popup.clear'" }),
    ref: orNull(Type.String({ description: 'the id of the message that caused it' })),
    name: Type.Optional(Type.String()),
    regions: Type.Optional(Type.Array(REGION, { description: 'a new layout: tiles then holds every tile' })),
    tiles: Type.Optional(Type.Array(TILE)),
    changes: Type.Optional(Type.Array(TILE_CHANGE)),
    tours: Type.Optional(Type.Array(TOUR)),
    removedTours: Type.Optional(Type.Array(Type.String())),
    plan: Type.Optional(orNull(PLAN)),
    popups: Type.Optional(Type.Array(POPUP)),
    removedPopups: Type.Optional(Type.Array(Type.String())),
  },
  { description: 'one acknowledged change; the keys present changed (control/model.ts applyDelta)' },
);

export const TILE_STATUS = Type.Object(
  {
    state: literals(['idle', 'starting', 'live', 'retrying', 'offline'] as const),
    reason: orNull(Type.String({ description: "the camera's last failure, in English" })),
    code: orNull(Type.String({ pattern: '^GW_ERR_' })),
    params: orNull(ERROR_PARAMS),
    retryInMs: orNull(Type.Integer()),
  },
  { description: "a tile's stream state" },
);
export const TILE_STATUSES = Type.Record(Type.String(), TILE_STATUS, { description: "each tile's stream state, by tile id" });

export const PRESET_VIEW = Type.Object({
  id: Type.String(),
  wallId: Type.String(),
  kind: literals(['preset', 'plan'] as const),
  name: Type.String(),
  priority: Type.Integer(),
  createdBy: Type.String(),
  createdAt: MS,
});

const ECHOED_ID = Type.Union([Type.String({ maxLength: 64 }), Type.Integer(), Type.Null()], { description: "the id of the client's message; null when it could not be read" });

/**
 * Every message the server sends, by type. `ack` and `error` answer a client's message (the ack's
 * payload is per message type: docs/control-protocol.md's table, the REST routes' answers at /docs);
 * the others are pushed to a wall's subscribers. The vehicle hub adds its own (vehicles/messages.ts).
 */
export const serverMessageSchemas = {
  ack: Type.Object(
    { type: Type.Literal('ack'), id: ECHOED_ID, payload: Type.Object({}, { additionalProperties: true, description: "the message's answer: the REST route's answer for the same message" }) },
    { additionalProperties: false, description: 'a message done' },
  ),
  error: Type.Object(
    {
      type: Type.Literal('error'),
      id: ECHOED_ID,
      code: Type.String({ pattern: '^GW_ERR_[A-Z_]+$', description: 'docs/errors.md' }),
      message: Type.String({ description: 'in English, for logs and API users' }),
      params: Type.Optional(ERROR_PARAMS),
      issues: Type.Optional(Type.Array(Type.Object({ field: Type.String(), message: Type.String(), rule: Type.Optional(Type.String()), params: Type.Optional(ERROR_PARAMS) }))),
      current: Type.Optional(WALL_VIEW),
      lock: Type.Optional(Type.Object({ tileId: Type.String(), userId: Type.String(), username: Type.String(), at: MS })),
    },
    { additionalProperties: true, description: "a message refused: the REST API's error body (errors.ts errorBody) and the id" },
  ),
  'wall.deltas': serverEnvelope('wall.deltas', Type.Object({ wallId: Type.String(), deltas: Type.Array(WALL_DELTA, { minItems: 1 }) }), 'changes to a subscribed wall, in version order'),
  'wall.status': serverEnvelope(
    'wall.status',
    Type.Object({ wallId: Type.String(), tiles: Type.Record(Type.String(), orNull(TILE_STATUS), { description: 'only the tiles whose state changed; null: the tile plays nothing now' }) }),
    "tiles' stream states as they change",
  ),
  'wall.snapshot': serverEnvelope('wall.snapshot', Type.Object({ wall: WALL_VIEW, status: TILE_STATUSES }), 'the wall as it is, instead of the backlog a slow client missed'),
  'wall.presets': serverEnvelope('wall.presets', Type.Object({ wallId: Type.String(), presets: Type.Array(PRESET_VIEW) }), "the wall's presets and plans, after one is saved or deleted"),
  'wall.removed': serverEnvelope('wall.removed', Type.Object({ wallId: Type.String() }), 'the wall is deleted or out of the user\'s scope: nothing more of it follows'),
} as const;

export type ServerMessageType = keyof typeof serverMessageSchemas;
export type ServerMessage<T extends ServerMessageType = ServerMessageType> = Static<(typeof serverMessageSchemas)[T]>;

/** One message, serialised; typed by its schema. */
export const frame = <T extends ServerMessageType>(message: ServerMessage<T>) => Buffer.from(JSON.stringify(message));

// model.ts's types and the schemas above, each assignable to the other: a field added, removed or retyped on one side fails to compile.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const agree = <T extends true>(_: T) => _;
agree<Same<WallView, Static<typeof WALL_VIEW>>>(true);
agree<Same<WallDelta, Static<typeof WALL_DELTA>>>(true);
agree<Same<TileStatus, Static<typeof TILE_STATUS>>>(true);
agree<Same<Tile, Static<typeof TILE>>>(true);
agree<Same<TileChange, Static<typeof TILE_CHANGE>>>(true);
agree<Same<Region, Static<typeof REGION>>>(true);
agree<Same<Tour, Static<typeof TOUR>>>(true);
agree<Same<PlanState, Static<typeof PLAN>>>(true);
agree<Same<Popup, Static<typeof POPUP>>>(true);
agree<Same<PresetView, Static<typeof PRESET_VIEW>>>(true);
