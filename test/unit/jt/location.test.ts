import t from 'tap';
import { decodeFrame, JtParseError, unescapeJt } from '../../../gateway/src/jt/protocol/frame.js';
import { decodeLocation, decodeLocationBatch, encodeLocation, encodeLocationBatch, type ActiveSafetyAlarm, type Location } from '../../../gateway/src/jt/protocol/location.js';

/** The kind of JtParseError `f` throws ('none' or 'other' otherwise). */
function kindOf(f: () => unknown): string {
  try {
    f();
  } catch (err) {
    return err instanceof JtParseError ? err.kind : `other: ${String(err)}`;
  }
  return 'none';
}

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');
/** A BCD time in GMT+8 as ms since the epoch. */
const gmt8 = (y: number, mo: number, d: number, h: number, mi: number, s: number) => Date.UTC(y, mo - 1, d, h - 8, mi, s);

const V1 = hex('7E 0200 0026 011223344550 0000 00000001 00000002 00BA7F0E 07E4F11C 0028 003C 0000 180715101010 01 04 00000064 02 02 0037 AB 7E');
const BASIC = hex('00000001 00000002 00BA7F0E 07E4F11C 0028 003C 0000 180715101010');
const ADAS_SU = hex('64 2F 00000001 0C 06 05 12 0A 0B 10 0F 11 0007 0000000D 0000000E 191211183100 0013 34343434343434 191210183100 03 02 00');

t.test('V1: a 0x0200 body field by field', async (t) => {
  const body = decodeFrame(unescapeJt(V1.subarray(1, -1))).body;
  const l = decodeLocation(body);
  t.same(l, {
    alarm: 1,
    status: 2,
    lat: 12.222222,
    lon: 132.444444,
    altitude: 40,
    speedKmh: 6,
    heading: 0,
    time: gmt8(2018, 7, 15, 10, 10, 10),
    extras: { mileageKm: 10, fuelL: 5.5, unknown: [] },
  });
  t.same(encodeLocation(l), body, 're-encodes to the same bytes');
});

t.test('the 0x64 vector (Su form)', async (t) => {
  const l = decodeLocation(Buffer.concat([BASIC, ADAS_SU]));
  t.same(l.extras.adas, {
    alarmId: 1,
    flag: 12,
    type: 6,
    level: 5,
    frontSpeedKmh: 18,
    distance: 10,
    departure: 11,
    signType: 16,
    signValue: 15,
    speedKmh: 17,
    altitude: 7,
    lat: 13 / 1e6,
    lon: 14 / 1e6,
    time: gmt8(2019, 12, 11, 18, 31, 0),
    vehicleStatus: 0x13,
    identifier: { form: 'su', terminalId: '4444444', time: gmt8(2019, 12, 10, 18, 31, 0), sequence: 3, attachments: 2 },
  });
  t.same(l.extras.unknown, []);
  t.same(encodeLocation(l), Buffer.concat([BASIC, ADAS_SU]));
});

const alarm = (form: 'su' | 'yue'): ActiveSafetyAlarm => ({
  alarmId: 77,
  flag: 1,
  type: 2,
  level: 2,
  speedKmh: 63,
  altitude: 12,
  lat: 23.123456,
  lon: 113.654321,
  time: gmt8(2024, 3, 4, 5, 6, 7),
  vehicleStatus: 0x401,
  identifier: { form, terminalId: form === 'su' ? 'T123456' : 'GD-TERMINAL-0001', time: gmt8(2024, 3, 4, 5, 6, 7), sequence: 1, attachments: 4 },
});

t.test('ADAS, DSM, BSD and TPMS in both forms; the 1078 video items; signal and satellites', async (t) => {
  for (const form of ['su', 'yue'] as const) {
    const l: Location = {
      alarm: 0x8,
      status: 0x3 | 0x4 | 0x8,
      lat: -23.5,
      lon: -46.25,
      altitude: 800,
      speedKmh: 63.4,
      heading: 359,
      time: gmt8(2024, 3, 4, 5, 6, 7),
      extras: {
        recorderSpeedKmh: 62.5,
        manualAlarmId: 9,
        videoAlarm: 0b100011,
        videoLost: 0b101,
        videoOccluded: 0b10,
        storageFault: 0x1001,
        abnormalDriving: { types: 0b110, fatigueLevel: 80 },
        signal: 25,
        satellites: 11,
        vehicleSignals: 0x10,
        adas: { ...alarm(form), frontSpeedKmh: 50, distance: 12, departure: 1, signType: 1, signValue: 60 },
        dsm: { ...alarm(form), type: 1, fatigueLevel: 7 },
        bsd: { alarmId: 3, flag: 2, type: 3, speedKmh: 10, altitude: 1, lat: 1.5, lon: 2.5, time: gmt8(2024, 1, 1, 0, 0, 0), vehicleStatus: 1, identifier: alarm(form).identifier },
        tpms: {
          alarmId: 4,
          flag: 1,
          speedKmh: 0,
          altitude: 0,
          lat: 0,
          lon: 0,
          time: gmt8(2024, 1, 1, 0, 0, 0),
          vehicleStatus: 0,
          identifier: alarm(form).identifier,
          tyres: [
            { position: 1, types: 0b10, pressureKpa: 900, temperatureC: 40, batteryPct: 90 },
            { position: 2, types: 0b1000, pressureKpa: 850, temperatureC: 95, batteryPct: 80 },
          ],
        },
        unknown: [{ id: 0xe1, value: hex('0102') }],
      },
    };
    const body = encodeLocation(l, form);
    const item = (id: number) => {
      for (let at = 28; at < body.length; at += 2 + body[at + 1]!) if (body[at] === id) return body[at + 1];
      return undefined;
    };
    t.equal(item(0x64), form === 'su' ? 47 : 71, `${form}: ADAS length`);
    t.equal(item(0x65), form === 'su' ? 47 : 71, `${form}: DSM length`);
    t.equal(item(0x67), form === 'su' ? 41 : 65, `${form}: BSD length`);
    t.equal(item(0x66), (form === 'su' ? 41 : 65) + 18, `${form}: TPMS length`);
    t.equal(item(0x18), 3);
    t.same(decodeLocation(body), l, `${form}: decodes to what was encoded`);
  }
});

t.test('south and west from the status bits; 0x18 of 2 bytes; all-zero time', async (t) => {
  const body = encodeLocation({ alarm: 0, status: 0, lat: -1.5, lon: -2.5, altitude: 0, speedKmh: 0, heading: 0, time: 0, extras: { abnormalDriving: { types: 1, fatigueLevel: null } } });
  t.equal(body.readUInt32BE(4), 0x0c);
  const l = decodeLocation(body);
  t.equal(l.lat, -1.5);
  t.equal(l.lon, -2.5);
  t.equal(l.time, 0);
  t.same(l.extras.abnormalDriving, { types: 1, fatigueLevel: null });
});

t.test('extra items that do not fit are kept raw, never thrown on', async (t) => {
  const body = Buffer.concat([
    BASIC,
    hex('01 02 0001'), // mileage of 2 bytes: a vendor's private use
    hex('64 05 0102030405'), // ADAS of neither form
    hex('14 04 00000003'),
    hex('70 03 AABBCC'), // an id we do not read
    hex('65 2F' + '00'.repeat(23) + 'FF'.repeat(6) + '00'.repeat(18)), // DSM whose time is not BCD
    hex('31 09 01'), // a length past the end
  ]);
  const l = decodeLocation(body);
  t.equal(l.extras.mileageKm, undefined);
  t.equal(l.extras.adas, undefined);
  t.equal(l.extras.dsm, undefined);
  t.equal(l.extras.videoAlarm, 3);
  t.same(
    l.extras.unknown.map((u) => [u.id, u.value.toString('hex')]),
    [
      [0x01, '0001'],
      [0x64, '0102030405'],
      [0x70, 'aabbcc'],
      [0x65, '00'.repeat(23) + 'ff'.repeat(6) + '00'.repeat(18)],
      [0x31, '01'],
    ],
  );
  t.equal(kindOf(() => decodeLocation(BASIC.subarray(0, 27))), 'truncated');
  const badTime = Buffer.from(BASIC);
  badTime[23] = 0x13; // month 13
  t.equal(kindOf(() => decodeLocation(badTime)), 'value');
  const february31 = Buffer.from(BASIC);
  february31.set([0x24, 0x02, 0x31], 22);
  t.equal(kindOf(() => decodeLocation(february31)), 'value', '31 February');
  const leapDay = Buffer.from(BASIC);
  leapDay.set([0x24, 0x02, 0x29], 22);
  t.equal(decodeLocation(leapDay).time, gmt8(2024, 2, 29, 10, 10, 10));
});

t.test('0x0704 batches', async (t) => {
  const a = encodeLocation({ alarm: 0, status: 2, lat: 30, lon: 120, altitude: 5, speedKmh: 40, heading: 90, time: gmt8(2024, 2, 2, 2, 2, 2) });
  const b = Buffer.concat([BASIC, hex('30 01 1F')]);
  const batch = encodeLocationBatch({ blindArea: true, items: [a, b] });
  t.same(batch.subarray(0, 3), hex('0002 01'));
  const d = decodeLocationBatch(batch);
  t.equal(d.blindArea, true);
  t.same(
    d.items.map((l) => [l.lat, l.speedKmh, l.extras.signal]),
    [
      [30, 40, undefined],
      [12.222222, 6, 0x1f],
    ],
  );
  t.equal(kindOf(() => decodeLocationBatch(batch.subarray(0, batch.length - 1))), 'length');
  t.equal(kindOf(() => decodeLocationBatch(hex('0001'))), 'truncated');
});
