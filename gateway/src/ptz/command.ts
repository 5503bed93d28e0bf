import { Type, type Static } from '@sinclair/typebox';
import { issue, ValidationError, type FieldIssue } from '../errors.js';

/**
 * A PTZ command as the REST route and the control WebSocket take it, whatever the camera's protocol:
 * a move (each axis -1, 0 or 1, held until a stop), a stop, or a preset. The GB/T 28181 encoding is
 * gb28181/ptz-cmd.ts; another protocol (ONVIF) would encode the same command its own way.
 */
export type Axis = -1 | 0 | 1;
export type PtzCommand =
  | { action: 'move'; pan?: Axis; tilt?: Axis; zoom?: Axis; speed?: number; zoomSpeed?: number }
  | { action: 'stop' }
  | { action: 'preset'; op: 'set' | 'goto' | 'delete'; preset: number };

export const DEFAULT_SPEED = 128;

const AXIS = (description: string) => Type.Union([Type.Literal(-1), Type.Literal(0), Type.Literal(1)], { description });
const CAMERA_ID = Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$' });

/**
 * One flat object rather than a union of three, so a refusal names the field at fault (a union
 * only says that no branch matched); which fields go with which action is checked by commandOf.
 */
const FIELDS = {
  action: Type.Union([Type.Literal('move'), Type.Literal('stop'), Type.Literal('preset')], { description: 'move until a stop; stop every movement; or a preset' }),
  pan: Type.Optional(AXIS('move: -1 left, 1 right')),
  tilt: Type.Optional(AXIS('move: -1 down, 1 up')),
  zoom: Type.Optional(AXIS('move: -1 out (wide), 1 in (tele)')),
  speed: Type.Optional(Type.Integer({ minimum: 1, maximum: 255, description: `move: pan and tilt speed (default ${DEFAULT_SPEED})` })),
  zoomSpeed: Type.Optional(Type.Integer({ minimum: 1, maximum: 15, description: 'move: zoom speed (default: the speed scaled to 1..15)' })),
  op: Type.Optional(Type.Union([Type.Literal('set'), Type.Literal('goto'), Type.Literal('delete')], { description: 'preset: store the current position, go to it, or delete it' })),
  preset: Type.Optional(Type.Integer({ minimum: 1, maximum: 255, description: 'preset: its number' })),
  takeover: Type.Optional(Type.Boolean({ description: 'take the camera from the user controlling it (walls:break-lock; audited)' })),
};

/** The REST body of POST /api/cameras/:id/ptz. */
export const PTZ_REQUEST = Type.Object(FIELDS, { additionalProperties: false });
export type PtzRequest = Static<typeof PTZ_REQUEST>;
/** The control message `ptz`: the REST body and the camera. */
export const PTZ_MESSAGE = Type.Object({ cameraId: CAMERA_ID, ...FIELDS }, { additionalProperties: false });
export type PtzMessage = Static<typeof PTZ_MESSAGE>;

const MOVE_FIELDS = ['pan', 'tilt', 'zoom', 'speed', 'zoomSpeed'] as const;
const PRESET_FIELDS = ['op', 'preset'] as const;

/** The command a checked body asks for, or a ValidationError naming the fields that do not go with its action. */
export function commandOf(body: PtzRequest, prefix = ''): PtzCommand {
  const issues: FieldIssue[] = [];
  const notFor = (fields: readonly (keyof PtzRequest)[]) => {
    for (const f of fields) if (body[f] !== undefined) issues.push(issue(prefix + f, 'unknownField', {}, `not a field of action "${body.action}"`));
  };
  let command: PtzCommand;
  if (body.action === 'preset') {
    notFor(MOVE_FIELDS);
    for (const f of PRESET_FIELDS) if (body[f] === undefined) issues.push(issue(prefix + f, 'required', {}, 'required for action "preset"'));
    command = { action: 'preset', op: body.op!, preset: body.preset! };
  } else {
    notFor(PRESET_FIELDS);
    if (body.action === 'stop') {
      notFor(MOVE_FIELDS);
      command = { action: 'stop' };
    } else {
      const { pan, tilt, zoom, speed, zoomSpeed } = body;
      command = { action: 'move', ...(pan !== undefined && { pan }), ...(tilt !== undefined && { tilt }), ...(zoom !== undefined && { zoom }), ...(speed !== undefined && { speed }), ...(zoomSpeed !== undefined && { zoomSpeed }) };
    }
  }
  if (issues.length) throw new ValidationError(issues);
  return command;
}

/** A camera's PTZ as one user sees it: the REST routes' answer and the `ptz` message's ack. */
export const PTZ_STATE = Type.Object(
  {
    cameraId: Type.String(),
    supported: Type.Boolean({ description: 'the camera can be steered (a GB/T 28181 channel)' }),
    holder: Type.Union([Type.Object({ userId: Type.String(), username: Type.String() }), Type.Null()], { description: 'who controls it now' }),
    until: Type.Union([Type.Integer({ description: 'ms since the epoch' }), Type.Null()], { description: "when the holder's lease ends unless they send another command" }),
    mine: Type.Boolean({ description: 'the holder is you' }),
    canTakeOver: Type.Boolean({ description: 'you may take the camera from another holder (walls:break-lock)' }),
    leaseMs: Type.Integer({ description: 'how long a command holds the camera (gb28181.ptz.leaseMs): a page holding a direction repeats the move within it, else the gateway stops the camera when it runs out' }),
  },
  { additionalProperties: false },
);
export type PtzState = Static<typeof PTZ_STATE>;
