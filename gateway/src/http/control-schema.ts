import { Type, type TSchema } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import type { Permission } from '../auth/roles.js';
import { messageSchemas, type MessageType } from '../control/protocol.js';
import { PERMISSION } from '../control/walls.js';
import { CONTROL_SCHEMA_URL } from './openapi.js';

export interface ControlMessage {
  permission: Permission;
  payload: TSchema;
}

/** The walls' messages, as control/protocol.ts checks them. */
export function wallMessages(): Record<string, ControlMessage> {
  return Object.fromEntries((Object.keys(messageSchemas) as MessageType[]).map((type) => [type, { permission: PERMISSION[type], payload: messageSchemas[type] }]));
}

/**
 * The control WebSocket's protocol as one JSON Schema (2020-12): `oneOf` a message per type, each
 * `{type, id, payload}` with the payload's schema the gateway checks it with (control/protocol.ts,
 * the vehicle hub's table), so a client can check what it sends against the same rules; and under
 * `serverMessages`, each message the server sends, by type, from the schemas its frames are typed by
 * (control/messages.ts, vehicles/messages.ts), each a whole schema of its own.
 */
export function controlSchemaDocument(messages: Record<string, ControlMessage>, serverMessages: Record<string, TSchema>) {
  const types = Object.keys(messages).sort();
  const $defs = Object.fromEntries(
    types.map((type) => [
      type,
      {
        type: 'object',
        description: `needs the permission ${messages[type]!.permission}`,
        'x-permission': messages[type]!.permission,
        properties: {
          type: { const: type },
          id: { oneOf: [{ type: 'string', maxLength: 64 }, { type: 'integer' }], description: 'echoed in the answer (ack or error)' },
          payload: JSON.parse(JSON.stringify(messages[type]!.payload)) as unknown,
        },
        required: ['type', 'payload'],
      },
    ]),
  );
  return {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    $id: CONTROL_SCHEMA_URL,
    title: 'wallgate control WebSocket: the messages a client sends (and, under serverMessages, those it receives)',
    description:
      'Connect to /api/control with "Authorization: Bearer <token>" (or the subprotocol "bearer.<token>"). Each message is {type, id, payload}; ' +
      'the server answers each with {type: "ack", id, payload} or {type: "error", id, code, message, params} (the GW_ERR_* codes and parameters of the REST API), and pushes ' +
      'wall.snapshot, wall.deltas, wall.status and wall.removed to a wall\'s subscribers, vehicles.positions and alarm to vehicle subscribers. ' +
      'serverMessages holds the JSON Schema of each message the server sends, by type. docs/control-protocol.md shows each message.',
    oneOf: types.map((type) => ({ $ref: `#/$defs/${type}` })),
    $defs,
    serverMessages: Object.fromEntries(Object.keys(serverMessages).sort().map((type) => [type, JSON.parse(JSON.stringify(serverMessages[type])) as unknown])),
  };
}

// Its properties are not listed: keywords such as $id and $ref as property names would read as references to the document's resolver.
const CONTROL_SCHEMA = Type.Object({}, { additionalProperties: true, description: 'a JSON Schema (2020-12) of every message a client may send, one definition ($defs) per type, and of every message the server sends (serverMessages)' });

/** Serves the document, built once: the message tables do not change while the gateway runs. */
export async function controlSchemaRoute(app: FastifyInstance, { messages, serverMessages }: { messages: Record<string, ControlMessage>; serverMessages: Record<string, TSchema> }) {
  const doc = controlSchemaDocument(messages, serverMessages);
  app.get(CONTROL_SCHEMA_URL, { schema: { response: { 200: CONTROL_SCHEMA } } }, async () => doc);
}
