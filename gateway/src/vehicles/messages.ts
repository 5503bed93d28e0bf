import { Type, type Static } from '@sinclair/typebox';
import { literals, orNull, serverEnvelope } from '../lib/schema-check.js';
import { ERROR_PARAMS } from '../errors.js';
import { ALARM_TYPES, SEVERITIES, VEHICLE_CATEGORIES, type Alarm, type PositionUpdate } from './model.js';

/**
 * The messages the vehicle hub pushes on the control WebSocket, as JSON Schemas (beside the walls'
 * in control/messages.ts): the hub builds each frame typed by them, and model.ts's types are checked
 * against them below, so /api/control/schema.json says what is sent.
 */

const MS = Type.Integer({ description: 'ms since the epoch' });

export const POSITION = Type.Object({ lat: Type.Number(), lon: Type.Number(), speed: Type.Number({ description: 'km/h' }), heading: Type.Number(), at: MS });

/** An alarm as the REST routes and the alarm messages give it (model.ts's Alarm). */
export const ALARM = Type.Object({
  id: Type.String(),
  vehicleId: Type.String(),
  plate: Type.String(),
  category: literals(VEHICLE_CATEGORIES),
  departmentId: Type.String(),
  type: literals(ALARM_TYPES),
  severity: literals(SEVERITIES),
  state: literals(['raised', 'acknowledged', 'closed'] as const),
  raisedAt: MS,
  lastReportAt: MS,
  occurrences: Type.Integer(),
  active: Type.Boolean(),
  clearedAt: orNull(MS),
  position: orNull(POSITION),
  geofence: orNull(Type.Object({ id: Type.String(), name: Type.String() })),
  late: Type.Boolean(),
  detail: Type.String(),
  acknowledgedBy: orNull(Type.String()),
  acknowledgedAt: orNull(MS),
  closedBy: orNull(Type.String()),
  closedAt: orNull(MS),
  closeReason: orNull(literals(['handled', 'cleared'] as const)),
  note: orNull(Type.String()),
  linkages: Type.Array(Type.Object({ ruleId: Type.String(), wallId: Type.String(), popupId: Type.String(), until: orNull(MS), endedAt: orNull(MS) })),
  snapshot: Type.Optional(
    orNull(Type.Object({ cameraId: Type.String(), takenAt: MS, width: Type.Integer(), height: Type.Integer() }, { description: 'the picture taken when it opened: GET /api/alarms/{id}/snapshot.jpg' })),
  ),
  snapshotError: Type.Optional(
    orNull(
      Type.Object(
        { code: Type.String(), message: Type.String(), params: Type.Optional(ERROR_PARAMS) },
        { description: 'why no picture was taken: the error a viewing of the camera would have got' },
      ),
    ),
  ),
});
export const POSITION_UPDATE = Type.Composite([
  POSITION,
  Type.Object({ id: Type.String(), plate: Type.String(), category: literals(VEHICLE_CATEGORIES), status: literals(['online', 'offline'] as const), moving: Type.Boolean() }),
]);

export const ALARM_CHANGES = ['raised', 'updated', 'acknowledged', 'closed'] as const;
export type AlarmChange = (typeof ALARM_CHANGES)[number];


export const vehicleServerMessageSchemas = {
  'vehicles.positions': serverEnvelope(
    'vehicles.positions',
    Type.Object({ positions: Type.Array(POSITION_UPDATE, { minItems: 1 }) }),
    "the latest state of each vehicle that moved since the subscriber's last batch (positions.subscribe)",
  ),
  alarm: serverEnvelope('alarm', Type.Object({ change: literals(ALARM_CHANGES), alarm: ALARM }), 'an alarm raised or changed (alarms.subscribe)'),
  'alarms.snapshot': serverEnvelope('alarms.snapshot', Type.Object({ alarms: Type.Array(ALARM) }), 'the open alarms as they are now, to a subscriber that fell behind and drained'),
} as const;

export type VehicleServerMessage<T extends keyof typeof vehicleServerMessageSchemas> = Static<(typeof vehicleServerMessageSchemas)[T]>;

/** One message, serialised; typed by its schema. */
export const frame = <T extends keyof typeof vehicleServerMessageSchemas>(message: VehicleServerMessage<T>) => Buffer.from(JSON.stringify(message));

type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const agree = <T extends true>(_: T) => _;
agree<Same<PositionUpdate, Static<typeof POSITION_UPDATE>>>(true);
// The schema leaves an alarm's picture fields optional: every Alarm fits it.
agree<[Alarm] extends [Static<typeof ALARM>] ? true : false>(true);
