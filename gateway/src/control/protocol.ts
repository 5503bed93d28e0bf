import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { schemaCheck } from '../lib/schema-check.js';

/**
 * The control protocol's messages. A client sends `{type, id, payload}`; the server answers each
 * with `{type: 'ack', id, payload}` or `{type: 'error', id, code, message, ...}` and pushes
 * `wall.deltas`, `wall.snapshot`, `wall.status` and `wall.removed` to subscribers. REST routes
 * send the same payloads through the same validation. docs/control-protocol.md shows each.
 */

const ID = Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$' });
const NAME = Type.String({ minLength: 1, maxLength: 100, pattern: '^[^\\u0000-\\u001f\\u007f]*$' });
const VERSION = Type.Integer({ minimum: 0 });
const TILE_ID = Type.String({ pattern: '^(s[0-9]{1,3}|wall)-[0-9]{1,3}$' });
const TILE_IDS = Type.Array(TILE_ID, { minItems: 1, maxItems: 256, uniqueItems: true });
const strict = <T extends Record<string, TSchema>>(props: T) => Type.Object(props, { additionalProperties: false });

const CELL = strict({
  row: Type.Integer({ minimum: 0, maximum: 15 }),
  col: Type.Integer({ minimum: 0, maximum: 15 }),
  rowSpan: Type.Integer({ minimum: 1, maximum: 16 }),
  colSpan: Type.Integer({ minimum: 1, maximum: 16 }),
});
export const LAYOUT_INPUT = Type.Union([
  Type.String({ maxLength: 8 }),
  strict({
    rows: Type.Integer({ minimum: 1, maximum: 16 }),
    cols: Type.Integer({ minimum: 1, maximum: 16 }),
    cells: Type.Array(CELL, { minItems: 1, maxItems: 256 }),
  }),
]);

const CONTENT = Type.Union([
  strict({ kind: Type.Literal('empty') }),
  strict({
    kind: Type.Literal('camera'),
    cameraId: ID,
    profile: Type.Optional(Type.Union([Type.Literal('auto'), Type.Literal('main'), Type.Literal('sub')])),
  }),
]);

const WALL = { wallId: ID };

export const messageSchemas = {
  'walls.list': strict({}),
  subscribe: strict(WALL),
  unsubscribe: strict(WALL),
  'wall.create': strict({
    id: Type.Optional(ID),
    name: NAME,
    departmentId: ID,
    screens: strict({
      rows: Type.Integer({ minimum: 1, maximum: 8 }),
      cols: Type.Integer({ minimum: 1, maximum: 16 }),
      width: Type.Integer({ minimum: 320, maximum: 7680 }),
      height: Type.Integer({ minimum: 240, maximum: 4320 }),
    }),
    layout: Type.Optional(LAYOUT_INPUT),
  }),
  'wall.delete': strict(WALL),
  'wall.rename': strict({ ...WALL, baseVersion: VERSION, name: NAME }),
  /** target: a monitor number (from 1), 'each' monitor alike, or 'wall' for one layout across every monitor. */
  'layout.set': strict({
    ...WALL,
    baseVersion: VERSION,
    target: Type.Union([Type.Integer({ minimum: 1, maximum: 128 }), Type.Literal('each'), Type.Literal('wall')]),
    layout: LAYOUT_INPUT,
  }),
  'tile.assign': strict({ ...WALL, baseVersion: VERSION, tileId: TILE_ID, content: CONTENT }),
  lock: strict({ ...WALL, tileIds: TILE_IDS }),
  unlock: strict({ ...WALL, tileIds: TILE_IDS }),
  'lock.break': strict({ ...WALL, tileIds: TILE_IDS }),
  'tour.start': strict({
    ...WALL,
    baseVersion: VERSION,
    name: NAME,
    tileIds: TILE_IDS,
    cameras: Type.Optional(Type.Array(ID, { minItems: 1, maxItems: 1000 })),
    departmentId: Type.Optional(ID),
    tag: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
    dwellSec: Type.Integer({ minimum: 1, maximum: 86_400 }),
  }),
  'tour.stop': strict({ ...WALL, tourId: ID }),
  'presets.list': strict(WALL),
  'preset.save': strict({ ...WALL, name: NAME }),
  'preset.recall': strict({ ...WALL, presetId: ID, baseVersion: VERSION }),
  'preset.delete': strict({ ...WALL, presetId: ID }),
  'plan.save': strict({ ...WALL, name: NAME, priority: Type.Integer({ minimum: 1, maximum: 100 }) }),
  'plan.activate': strict({ ...WALL, planId: ID }),
  'plan.revert': strict(WALL),
  'plan.delete': strict({ ...WALL, planId: ID }),
  /** Takes an alarm pop-up off the wall; the alarm stays open. */
  'popup.dismiss': strict({ ...WALL, popupId: ID }),
} as const;

export type MessageType = keyof typeof messageSchemas;
export type Payload<T extends MessageType> = Static<(typeof messageSchemas)[T]>;

const checkers = new Map(Object.entries(messageSchemas).map(([type, schema]) => [type, schemaCheck(schema as TSchema)]));

export const isMessageType = (type: string): type is MessageType => Object.hasOwn(messageSchemas, type);

/** The payload, typed; or a ValidationError naming each bad field (one issue per field). */
export function validatePayload<T extends MessageType>(type: T, payload: unknown): Payload<T> {
  return checkers.get(type)!.parse(payload) as Payload<T>;
}
