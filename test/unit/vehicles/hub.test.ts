import { EventEmitter } from 'node:events';
import t from 'tap';
import type { PathRange } from '../../../gateway/src/store/types.js';
import { VehicleHub, type HubPeer } from '../../../gateway/src/vehicles/hub.js';
import type { Alarm } from '../../../gateway/src/vehicles/model.js';
import type { VehicleService } from '../../../gateway/src/vehicles/service.js';

/** The service as the hub uses it: scopes are department ids, an alarm's department must be among them. */
function fakeService(open: Partial<Alarm>[]) {
  const events = new EventEmitter();
  return Object.assign(events, {
    rangesOf: (actor: { scopes: string[] }): PathRange[] => actor.scopes.map((s) => [s, s] as PathRange),
    sees: (departmentId: string, ranges: PathRange[]) => ranges.some(([d]) => d === departmentId),
    openAlarms: (actor: { scopes: string[] }) => open.filter((a) => actor.scopes.includes(a.departmentId!)),
    entries: () => [],
  }) as unknown as VehicleService;
}

function peer(scopes: string[], accept = () => true) {
  const frames: any[] = [];
  const p: HubPeer = { actor: { id: 'u', username: 'u', ip: '-', scopes, roles: ['regulator'] }, send: (f) => (accept() ? (frames.push(JSON.parse(f.toString())), true) : false) };
  return { p, frames };
}

t.test('alarm frames go to subscribers in scope and above their severity; a client that fell behind gets the open alarms again', async (t) => {
  const open = [{ id: 'a1', departmentId: 'A', severity: 'high' as const }];
  const service = fakeService(open);
  const hub = new VehicleHub(service, { minIntervalMs: 1000 });
  const raise = (alarm: Partial<Alarm>) => (service as unknown as EventEmitter).emit('alarm', alarm, 'raised');
  t.teardown(() => hub.close());
  let draining = true;
  const a = peer(['A'], () => draining);
  const b = peer(['B']);
  const picky = peer(['A']);
  t.same((hub.handle(a.p, 'alarms.subscribe', {}) as { alarms: unknown[] }).alarms, open);
  hub.handle(b.p, 'alarms.subscribe', {});
  hub.handle(picky.p, 'alarms.subscribe', { minSeverity: 'critical' });

  raise({ id: 'a2', departmentId: 'A', severity: 'high' });
  t.same(a.frames.map((f) => [f.type, f.payload.change, f.payload.alarm.id]), [['alarm', 'raised', 'a2']]);
  t.same(b.frames, [], 'another department hears nothing');
  t.same(picky.frames, [], 'below the subscriber\'s severity');

  draining = false;
  raise({ id: 'a3', departmentId: 'A', severity: 'high' });
  t.equal(a.frames.length, 1, 'held back while the client is behind');
  draining = true;
  hub.resynced(a.p);
  t.same(a.frames.at(-1), { type: 'alarms.snapshot', payload: { alarms: open } }, 'the open alarms as they are now instead');
  hub.resynced(b.p);
  t.same(b.frames.at(-1)?.type, 'alarms.snapshot');
  hub.closed(a.p);
  raise({ id: 'a4', departmentId: 'A', severity: 'high' });
  t.equal(a.frames.length, 2, 'nothing after the connection closed');
  t.throws(() => hub.handle({ ...a.p, actor: { ...a.p.actor, roles: ['auditor'] } }, 'alarms.subscribe', {}), { code: 'GW_ERR_FORBIDDEN' });
});
