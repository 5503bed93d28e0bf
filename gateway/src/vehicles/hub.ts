import type { TSchema } from '@sinclair/typebox';
import { allows, type Permission } from '../auth/roles.js';
import { GatewayError, ValidationError, reasoned } from '../errors.js';
import type { PathRange } from '../store/types.js';
import { alarmMessages } from './alarms.js';
import type { VehicleMessages } from './context.js';
import { inBbox, type Bbox } from './geo.js';
import { ALARM_SUBSCRIPTION, alarmSubscription, EMPTY_PAYLOAD, emptyPayload, POSITION_SUBSCRIPTION, positionSubscription } from './input.js';
import { frame, type AlarmChange } from './messages.js';
import { positionMessages } from './positions.js';
import { SEVERITIES, type Alarm, type PositionUpdate, type Severity, type VehicleCategory } from './model.js';
import type { VehicleActor, VehicleEntry, VehicleService, VehiclesConfig } from './service.js';

/** A control-WebSocket client as the hub sees it (the control server's peer fits). */
export interface HubPeer {
  readonly actor: VehicleActor;
  send(frame: Buffer): boolean;
}

/** A message the hub answers: the permission it needs, and what it does for the peer. */
interface HubMessage {
  permission: Permission;
  /** The payload's schema, the one handle checks it with. */
  payload: TSchema;
  handle(peer: HubPeer, payload: unknown): unknown;
}

/** The sections' messages, answered for the peer's actor. */
function forPeer(messages: VehicleMessages): Record<string, HubMessage> {
  return Object.fromEntries(Object.entries(messages).map(([type, m]) => [type, { permission: m.permission, payload: m.payload, handle: (peer: HubPeer, payload: unknown) => m.handle(peer.actor, payload) }]));
}

interface PositionSubscription {
  ranges: PathRange[];
  /** A department narrowing the scope, and its subtree's ranges (read again at each heartbeat: departments move). */
  departmentId: string | null;
  department: PathRange[] | null;
  categories: Set<VehicleCategory> | null;
  bbox: Bbox | null;
  intervalMs: number;
  /** Vehicles that changed since the last batch this subscriber got: only their latest state goes. */
  pending: Set<VehicleEntry>;
  lastSent: number;
}

interface AlarmSubscription {
  ranges: PathRange[];
  minSeverity: Severity;
}


export function positionUpdate(e: VehicleEntry): PositionUpdate | null {
  const p = e.live.position;
  if (!p) return null;
  return { id: e.vehicle.id, plate: e.vehicle.plate, category: e.vehicle.category, ...p, status: e.live.status, moving: e.live.moving };
}

/**
 * Vehicle messages on the control WebSocket: a feed reports positions and alarms; regulators follow
 * positions (all, a category, a department or a bounding box), batched to at most one frame per
 * interval with each vehicle's latest state, and alarms in their scope as they happen.
 */
export class VehicleHub {
  private readonly positionSubs = new Map<HubPeer, PositionSubscription>();
  private readonly alarmSubs = new Map<HubPeer, AlarmSubscription>();
  /** Vehicles changed since the last tick, spread to the subscriptions at the tick. */
  private dirty = new Set<VehicleEntry>();
  private readonly timer: NodeJS.Timeout;
  /** The hub's own messages and those of the service's sections, one table. */
  private readonly messages: Record<string, HubMessage>;

  constructor(
    private readonly vehicles: VehicleService,
    private readonly config: VehiclesConfig['subscriptions'],
    private readonly clock: () => number = () => performance.now(),
  ) {
    this.messages = { ...this.subscriptionMessages(), ...forPeer(positionMessages(vehicles)), ...forPeer(alarmMessages(vehicles)) };
    vehicles.on('position', (e) => this.dirty.add(e));
    vehicles.on('status', (e) => this.dirty.add(e));
    vehicles.on('removed', (e) => {
      this.dirty.delete(e);
      for (const sub of this.positionSubs.values()) sub.pending.delete(e);
    });
    vehicles.on('alarm', (a, change) => this.alarmChanged(a, change));
    // Ticks at a quarter of the fastest interval, so a batch is at most that late.
    this.timer = setInterval(() => this.tick(), Math.max(25, Math.floor(config.minIntervalMs / 4)));
    this.timer.unref();
  }

  close() {
    clearInterval(this.timer);
  }

  /** Each message type the hub answers, with the permission it needs and its payload's schema. */
  describe(): Record<string, { permission: Permission; payload: TSchema }> {
    return Object.fromEntries(Object.entries(this.messages).map(([type, m]) => [type, { permission: m.permission, payload: m.payload }]));
  }

  handles(type: string): boolean {
    return Object.hasOwn(this.messages, type);
  }

  admits(actor: VehicleActor): boolean {
    return allows(actor.roles, 'vehicles:read') || allows(actor.roles, 'vehicles:feed');
  }

  handle(peer: HubPeer, type: string, payload: unknown): unknown {
    const message = Object.hasOwn(this.messages, type) ? this.messages[type] : undefined;
    if (!message) throw new GatewayError('GW_ERR_BAD_MESSAGE', `type: unknown message type "${type.slice(0, 64)}"`);
    if (!allows(peer.actor.roles, message.permission)) throw reasoned('GW_ERR_FORBIDDEN', 'permission', { permission: message.permission }, `your roles do not allow ${message.permission}`);
    return message.handle(peer, payload);
  }

  /** The hub's own messages: subscriptions. */
  private subscriptionMessages(): Record<string, HubMessage> {
    return {
      'vehicles.subscribe': { permission: 'vehicles:read', payload: POSITION_SUBSCRIPTION, handle: (peer, payload) => this.subscribePositions(peer, positionSubscription.parse(payload)) },
      'vehicles.unsubscribe': {
        permission: 'vehicles:read',
        payload: EMPTY_PAYLOAD,
        handle: (peer, payload) => {
          emptyPayload.parse(payload);
          return { subscribed: this.positionSubs.delete(peer) };
        },
      },
      'alarms.subscribe': {
        permission: 'vehicles:read',
        payload: ALARM_SUBSCRIPTION,
        handle: (peer, payload) => {
          const p = alarmSubscription.parse(payload);
          const sub: AlarmSubscription = { ranges: this.vehicles.rangesOf(peer.actor), minSeverity: p.minSeverity ?? 'info' };
          this.alarmSubs.set(peer, sub);
          return { alarms: this.vehicles.openAlarms(peer.actor, sub.minSeverity) };
        },
      },
      'alarms.unsubscribe': {
        permission: 'vehicles:read',
        payload: EMPTY_PAYLOAD,
        handle: (peer, payload) => {
          emptyPayload.parse(payload);
          return { subscribed: this.alarmSubs.delete(peer) };
        },
      },
    };
  }

  private subscribePositions(peer: HubPeer, p: ReturnType<typeof positionSubscription.parse>) {
    const ranges = this.vehicles.rangesOf(peer.actor);
    if (p.departmentId && !this.vehicles.sees(p.departmentId, ranges)) {
      throw new ValidationError([{ field: 'departmentId', message: `no department "${p.departmentId}" in your scope` }]);
    }
    if (p.bbox && (p.bbox[0] > p.bbox[2] || p.bbox[1] > p.bbox[3])) throw new ValidationError([{ field: 'bbox', message: 'expected [minLon, minLat, maxLon, maxLat] with min <= max' }]);
    const intervalMs = Math.max(this.config.minIntervalMs, p.intervalMs ?? this.config.minIntervalMs);
    const sub: PositionSubscription = {
      ranges,
      departmentId: p.departmentId ?? null,
      department: p.departmentId ? this.departmentRanges(p.departmentId) : null,
      categories: p.categories ? new Set(p.categories) : null,
      bbox: p.bbox ? { minLon: p.bbox[0], minLat: p.bbox[1], maxLon: p.bbox[2], maxLat: p.bbox[3] } : null,
      intervalMs,
      pending: new Set(),
      lastSent: this.clock(),
    };
    this.positionSubs.set(peer, sub);
    const vehicles: PositionUpdate[] = [];
    for (const e of this.vehicles.entries()) {
      const u = this.matches(sub, e) ? positionUpdate(e) : null;
      if (u) vehicles.push(u);
    }
    return { intervalMs, vehicles };
  }

  private departmentRanges(departmentId: string): PathRange[] {
    return this.vehicles.rangesOf({ id: '-', username: '-', ip: '-', roles: [], scopes: [departmentId] });
  }

  private matches(sub: PositionSubscription, e: VehicleEntry): boolean {
    const v = e.vehicle;
    if (sub.categories && !sub.categories.has(v.category)) return false;
    const p = e.live.position;
    if (sub.bbox && !(p && inBbox(sub.bbox, p.lon, p.lat))) return false;
    if (!this.vehicles.sees(v.departmentId, sub.ranges)) return false;
    if (sub.department && !this.vehicles.sees(v.departmentId, sub.department)) return false;
    return true;
  }

  private tick() {
    if (this.dirty.size && this.positionSubs.size) {
      for (const sub of this.positionSubs.values()) for (const e of this.dirty) if (this.matches(sub, e)) sub.pending.add(e);
    }
    this.dirty = new Set();
    const now = this.clock();
    // Each vehicle's update is serialised once per tick, whatever the number of subscribers.
    const json = new Map<VehicleEntry, string>();
    for (const [peer, sub] of this.positionSubs) {
      if (sub.pending.size === 0 || now - sub.lastSent < sub.intervalMs) continue;
      const parts: string[] = [];
      for (const e of sub.pending) {
        let text = json.get(e);
        if (text === undefined) {
          const u = positionUpdate(e);
          json.set(e, (text = u ? JSON.stringify(u) : ''));
        }
        if (text) parts.push(text);
      }
      // Each part is a PositionUpdate, which vehicles/messages.ts checks against the schema of vehicles.positions.
      // A subscriber too far behind keeps its pending set and gets the latest state when it drains.
      if (parts.length && !peer.send(Buffer.from(`{"type":"vehicles.positions","payload":{"positions":[${parts.join(',')}]}}`))) continue;
      sub.pending.clear();
      sub.lastSent = now;
    }
  }

  private alarmChanged(alarm: Alarm, change: AlarmChange) {
    if (this.alarmSubs.size === 0) return;
    let sent: Buffer | null = null;
    const rank = SEVERITIES.indexOf(alarm.severity);
    for (const [peer, sub] of this.alarmSubs) {
      if (rank < SEVERITIES.indexOf(sub.minSeverity) || !this.vehicles.sees(alarm.departmentId, sub.ranges)) continue;
      peer.send((sent ??= frame({ type: 'alarm', payload: { change, alarm } })));
    }
  }

  /** The peer's roles or scope may have changed: its subscriptions follow. */
  rechecked(peer: HubPeer) {
    const canRead = allows(peer.actor.roles, 'vehicles:read');
    const ranges = this.vehicles.rangesOf(peer.actor);
    const p = this.positionSubs.get(peer);
    if (p) {
      if (canRead) {
        p.ranges = ranges;
        if (p.departmentId) p.department = this.departmentRanges(p.departmentId);
      } else this.positionSubs.delete(peer);
    }
    const a = this.alarmSubs.get(peer);
    if (a) {
      if (canRead) a.ranges = ranges;
      else this.alarmSubs.delete(peer);
    }
  }

  /** Alarm frames held back from a slow client are not replayed: it gets the open alarms as they are now. */
  resynced(peer: HubPeer) {
    const sub = this.alarmSubs.get(peer);
    if (sub) peer.send(frame({ type: 'alarms.snapshot', payload: { alarms: this.vehicles.openAlarms(peer.actor, sub.minSeverity) } }));
  }

  closed(peer: HubPeer) {
    this.positionSubs.delete(peer);
    this.alarmSubs.delete(peer);
  }
}
