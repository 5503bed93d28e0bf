import type { TSchema } from '@sinclair/typebox';
import { allows, type Permission } from '../auth/roles.js';
import { schemaCheck } from '../lib/schema-check.js';
import { commandOf, PTZ_MESSAGE } from './command.js';
import type { PtzActor, PtzService, PtzState } from './service.js';

const checkMessage = schemaCheck(PTZ_MESSAGE);

/**
 * The control WebSocket's `ptz` message (app.ts extends the control server with it): the camera and
 * the REST route's body, answered with the same state or the same error.
 */
export class PtzControl {
  constructor(private readonly ptz: PtzService) {}

  describe(): Record<string, { permission: Permission; payload: TSchema }> {
    return { ptz: { permission: 'ptz:control', payload: PTZ_MESSAGE } };
  }

  handles(type: string): boolean {
    return type === 'ptz';
  }

  handle(peer: { readonly actor: PtzActor }, _type: string, payload: unknown): Promise<PtzState> {
    // The service checks the permission and the scope; the payload is checked here, before it.
    const { cameraId, ...body } = checkMessage.parse(payload);
    return this.ptz.command(peer.actor, cameraId, commandOf(body), body.takeover ?? false, peer);
  }

  /** Connections are admitted for the walls' sake; a PTZ user has walls:read anyway. */
  admits(actor: PtzActor): boolean {
    return allows(actor.roles, 'ptz:control');
  }

  rechecked(): void {}
  resynced(): void {}
  /** A camera this connection left moving is stopped: nobody is there to release the button. */
  closed(peer: object): void {
    this.ptz.originClosed(peer);
  }
}
