import t from 'tap';
import { JtFeed, type JtFeedTarget } from '../../../gateway/src/jt/feed.js';
import type { ActiveSafetyAlarm, Location, LocationExtras } from '../../../gateway/src/jt/protocol/location.js';

/** The vehicle service as the feed sees it: every call recorded. */
function fakeVehicles() {
  const calls: { positions: any[][]; alarms: any[][]; heard: string[] } = { positions: [], alarms: [], heard: [] };
  const target: JtFeedTarget = {
    reportPositions: async (_actor, items) => (calls.positions.push(items), { accepted: items.length, outOfOrder: 0, stale: 0, rejected: [] }),
    reportAlarms: async (_actor, items) => (calls.alarms.push(items), { raised: [], repeated: [], cleared: [], rejected: [] }),
    heard: (id) => void calls.heard.push(id),
  };
  return { target, calls };
}

const log = { warn: () => undefined };
const T0 = Date.UTC(2026, 0, 1, 8);

function loc(extra: Partial<Omit<Location, 'extras'>> = {}, extras: Partial<LocationExtras> = {}): Location {
  return { alarm: 0, status: 2, lat: 31.2, lon: 121.5, altitude: 10, speedKmh: 40, heading: 90, time: T0, ...extra, extras: { unknown: [], ...extras } };
}

function safety(type: number, flag: number, extra: Partial<ActiveSafetyAlarm> = {}, form: 'su' | 'yue' = 'su'): ActiveSafetyAlarm {
  return { alarmId: 1, flag, type, level: 1, speedKmh: 50, altitude: 0, lat: 31.2, lon: 121.5, time: T0, vehicleStatus: 1, identifier: { form, terminalId: 'T1', time: T0, sequence: 0, attachments: 0 }, ...extra };
}

/** The alarms sent, flattened, as "type state/severity". */
const sent = (calls: { alarms: any[][] }) => calls.alarms.flat().map((a) => `${a.type} ${a.state ?? a.severity}`);

t.test('positions of many terminals go out in one batch per interval; a report without a fix only keeps the vehicle heard', async (t) => {
  const { target, calls } = fakeVehicles();
  const feed = new JtFeed({ vehicles: target, flushMs: 30, log });
  for (let i = 0; i < 500; i++) feed.location(`v${i % 5}`, loc({ time: T0 + i, heading: 360 }), '2013');
  feed.location('v9', loc({ lat: 0, lon: 0 }), '2013');
  t.equal(calls.positions.length, 0, 'nothing written before the interval');
  await new Promise((r) => setTimeout(r, 80));
  t.equal(calls.positions.length, 1, 'one write for the batch');
  t.equal(calls.positions[0]!.length, 500);
  t.same(calls.positions[0]![0], { vehicleId: 'v0', lat: 31.2, lon: 121.5, speed: 40, heading: 0, at: T0 }, 'heading 360 is north');
  t.equal(calls.heard.length, 501, 'every report, fixed or not, keeps its vehicle heard');
  t.equal(calls.alarms.length, 0, 'no alarm bit, no alarm');
  await feed.close();
});

t.test('an alarm bit is raised on its rising edge and cleared on its falling one; 2019-only bits are read only from 2019 terminals', async (t) => {
  const { target, calls } = fakeVehicles();
  const feed = new JtFeed({ vehicles: target, flushMs: 1000, log });
  feed.location('v1', loc({ alarm: 1 }), '2013');
  await feed.flush();
  t.same(sent(calls), ['emergency-button critical']);
  t.match(calls.alarms[0]![0], { vehicleId: 'v1', at: T0, lat: 31.2, lon: 121.5 });
  feed.location('v1', loc({ alarm: 1 }), '2013');
  feed.location('v1', loc({ alarm: 1 | (1 << 29) }), '2013');
  await feed.flush();
  t.same(sent(calls), ['emergency-button critical', 'collision-warning high'], 'a held bit is not raised again');
  feed.location('v1', loc({ alarm: 1 << 29 }), '2013');
  feed.location('v1', loc({ alarm: 0 }), '2013');
  await feed.flush();
  t.same(sent(calls).slice(2), ['emergency-button cleared', 'collision-warning cleared']);
  feed.location('v2', loc({ alarm: (1 << 16) | (1 << 13) }), '2013');
  await feed.flush();
  t.equal(sent(calls).length, 4, 'bit 16 is reserved in 2013, bit 13 is a pre-warning');
  feed.location('v3', loc({ alarm: 1 << 16 }), '2019');
  await feed.flush();
  t.same(sent(calls).slice(4), ['tyre-pressure medium']);
  await feed.close();
});

t.test('JT/T 1078 video alarms and abnormal driving are held conditions too', async (t) => {
  const { target, calls } = fakeVehicles();
  const feed = new JtFeed({ vehicles: target, flushMs: 1000, log });
  feed.location('v1', loc({}, { videoAlarm: 0b100011, abnormalDriving: { types: 0b110, fatigueLevel: null } }), '2013');
  await feed.flush();
  t.same(sent(calls).sort(), ['phone-use medium', 'smoking medium', 'video-loss low', 'video-occluded low']);
  feed.location('v1', loc({}, { videoAlarm: 0b1 }), '2013');
  await feed.flush();
  t.same(sent(calls).slice(4).sort(), ['phone-use cleared', 'smoking cleared', 'video-occluded cleared']);
  await feed.close();
});

t.test('ADAS and DSM alarms: start raises with the level as severity, a repeated start is nothing new, end clears; types by form', async (t) => {
  const { target, calls } = fakeVehicles();
  const feed = new JtFeed({ vehicles: target, flushMs: 1000, log });
  feed.location('v1', loc({}, { adas: safety(0x01, 1, { alarmId: 7, level: 2, frontSpeedKmh: 60, distance: 12 }) }), '2013');
  feed.location('v1', loc({}, { adas: safety(0x01, 1, { alarmId: 7, level: 2 }) }), '2013');
  await feed.flush();
  t.same(sent(calls), ['collision-warning high']);
  t.match(calls.alarms[0]![0].detail, /ADAS type 0x01 level 2.*vehicle ahead 60 km\/h.*1\.2 s/);
  feed.location('v1', loc({}, { adas: safety(0x01, 2, { alarmId: 7 }) }), '2013');
  await feed.flush();
  t.same(sent(calls).slice(1), ['collision-warning cleared']);

  feed.location('v2', loc({}, { dsm: safety(0x0a, 1, { alarmId: 1 }, 'yue') }), '2019');
  feed.location('v3', loc({}, { dsm: safety(0x0a, 1, { alarmId: 1 }, 'su') }), '2013');
  feed.location('v4', loc({}, { dsm: safety(0x02, 0, { alarmId: 3 }) }), '2013');
  feed.location('v5', loc({}, { adas: safety(0x10, 1, { alarmId: 4 }) }), '2013');
  await feed.flush();
  t.same(sent(calls).slice(2), ['seatbelt medium', 'phone-use medium'], "Yue's 0x0A is the seatbelt, Su's is custom; a road-sign event is no alarm");
  feed.location('v4', loc(), '2013');
  await feed.flush();
  t.equal(sent(calls).length, 4, 'an alarm without an end (flag 0) is not cleared by a quiet report');
  await feed.close();
});

t.test('a condition held by a bit and started by DSM clears only when both are over', async (t) => {
  const { target, calls } = fakeVehicles();
  const feed = new JtFeed({ vehicles: target, flushMs: 1000, log });
  feed.location('v1', loc({}, { dsm: safety(0x01, 1, { alarmId: 9 }) }), '2013');
  feed.location('v1', loc({ alarm: 1 << 2 }), '2013');
  feed.location('v1', loc(), '2013');
  await feed.flush();
  t.same(sent(calls), ['fatigue-driving medium'], 'the bit going while DSM still holds it clears nothing');
  feed.location('v1', loc({}, { dsm: safety(0x01, 2, { alarmId: 9 }) }), '2013');
  await feed.flush();
  t.same(sent(calls).slice(1), ['fatigue-driving cleared']);
  await feed.close();
});

t.test('close sends what is queued and takes nothing after', async (t) => {
  const { target, calls } = fakeVehicles();
  const feed = new JtFeed({ vehicles: target, flushMs: 60_000, log });
  feed.location('v1', loc(), '2013');
  await feed.close();
  t.equal(calls.positions.flat().length, 1);
  feed.location('v1', loc({ alarm: 1 }), '2013');
  await feed.flush();
  t.equal(calls.alarms.length, 0);
});
