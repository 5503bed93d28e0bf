import fc from 'fast-check';
import t from 'tap';
import { parsePtzCmd, ptzCmdBytes, ptzCmdHex } from '../../../gateway/src/gb28181/ptz-cmd.js';
import type { PtzCommand } from '../../../gateway/src/ptz/command.js';

/** The checksum worked out again from the hex text: the sum of the first seven bytes, modulo 256. */
function checksumOk(hex: string) {
  const bytes = hex.match(/../g)!.map((p) => parseInt(p, 16));
  return bytes.slice(0, 7).reduce((a, b) => a + b, 0) % 256 === bytes[7];
}

t.test('published PTZCmd strings come out byte for byte', async (t) => {
  // A5 + 0F + 01 = 0xB5: a stop is the header and its own checksum.
  t.equal(ptzCmdHex({ action: 'stop' }), 'A50F0100000000B5', 'stop');
  // 0xB5 + 0x02 (left) + 0x1F (pan speed) = 0xD6.
  t.equal(ptzCmdHex({ action: 'move', pan: -1, speed: 0x1f }), 'A50F01021F0000D6', 'left at 0x1F');
  // A Go implementation's worked example: A5+0F+01+08+00+64+00 = 0x121, low byte 0x21.
  t.equal(ptzCmdHex({ action: 'move', tilt: 1, speed: 0x64 }), 'A50F010800640021', 'up at 0x64');
  // The preset number rides in byte 6 (WVP's parameter2): B5+82+05 = 0x13C.
  t.equal(ptzCmdHex({ action: 'preset', op: 'goto', preset: 5 }), 'A50F01820005003C', 'goto preset 5');
});

t.test('each instruction, worked out by hand', async (t) => {
  const cases: [PtzCommand, string][] = [
    [{ action: 'move', pan: 1, speed: 0x40 }, 'A50F0101400000F6'],
    [{ action: 'move', tilt: -1, speed: 0x40 }, 'A50F0104004000F9'],
    [{ action: 'move', pan: -1, tilt: 1, speed: 0x10 }, 'A50F010A101000DF'],
    [{ action: 'move', zoom: 1, zoomSpeed: 4 }, 'A50F011000004005'],
    [{ action: 'move', zoom: -1, zoomSpeed: 15 }, 'A50F01200000F0C5'],
    [{ action: 'move', pan: 0, tilt: 0, zoom: 0, speed: 9 }, 'A50F0100000000B5'],
    [{ action: 'preset', op: 'set', preset: 1 }, 'A50F018100010037'],
    [{ action: 'preset', op: 'delete', preset: 255 }, 'A50F018300FF0037'],
  ];
  for (const [cmd, hex] of cases) {
    t.equal(ptzCmdHex(cmd), hex, JSON.stringify(cmd));
    t.ok(checksumOk(hex), `${hex}: the checksum adds up`);
  }
  // Byte 2 is the version (0) and its check nibble (0xA + 0x5 + 0) % 16; byte 7's low nibble the address's high bits.
  t.equal(ptzCmdHex({ action: 'stop' }, 0x123), 'A50F2300000001D8', 'address 0x123: low byte in byte 3, high nibble in byte 7');
  t.equal(ptzCmdBytes({ action: 'stop' })[1], 0x0f);
  t.throws(() => ptzCmdHex({ action: 'move', pan: 1, speed: 256 }), RangeError);
  t.throws(() => ptzCmdHex({ action: 'move', zoom: 1, zoomSpeed: 16 }), RangeError);
  t.throws(() => ptzCmdHex({ action: 'preset', op: 'goto', preset: 0 }), RangeError);
});

t.test('any command, re-computed independently, and read back', async (t) => {
  const axis = fc.constantFrom(-1 as const, 0 as const, 1 as const);
  const command: fc.Arbitrary<PtzCommand> = fc.oneof(
    fc.record({ action: fc.constant('move' as const), pan: axis, tilt: axis, zoom: axis, speed: fc.integer({ min: 1, max: 255 }), zoomSpeed: fc.integer({ min: 1, max: 15 }) }),
    fc.constant({ action: 'stop' as const }),
    fc.record({ action: fc.constant('preset' as const), op: fc.constantFrom('set' as const, 'goto' as const, 'delete' as const), preset: fc.integer({ min: 1, max: 255 }) }),
  );
  fc.assert(
    fc.property(command, fc.integer({ min: 0, max: 0xfff }), (cmd, address) => {
      const hex = ptzCmdHex(cmd, address);
      // Written out from the table of bytes, by another route than the encoder's.
      let code = 0;
      let d1 = 0;
      let d2 = 0;
      let z = 0;
      if (cmd.action === 'move') {
        code = ({ 1: 0x01, [-1]: 0x02, 0: 0 } as Record<number, number>)[cmd.pan ?? 0]! + ({ 1: 0x08, [-1]: 0x04, 0: 0 } as Record<number, number>)[cmd.tilt ?? 0]! + ({ 1: 0x10, [-1]: 0x20, 0: 0 } as Record<number, number>)[cmd.zoom ?? 0]!;
        d1 = cmd.pan ? cmd.speed! : 0;
        d2 = cmd.tilt ? cmd.speed! : 0;
        z = cmd.zoom ? cmd.zoomSpeed! : 0;
      } else if (cmd.action === 'preset') {
        code = { set: 129, goto: 130, delete: 131 }[cmd.op];
        d2 = cmd.preset;
      }
      const bytes = [165, 15, address % 256, code, d1, d2, z * 16 + Math.floor(address / 256)];
      const expected = [...bytes, bytes.reduce((a, b) => a + b) % 256].map((b) => b.toString(16).padStart(2, '0')).join('').toUpperCase();
      if (hex !== expected) throw new Error(`${JSON.stringify(cmd)}@${address}: ${hex} != ${expected}`);
      const back = parsePtzCmd(hex);
      if (!back || back.address !== address || ptzCmdHex(back.command, back.address) !== hex) throw new Error(`${hex} does not read back`);
    }),
    { numRuns: 2000 },
  );
  t.pass('2,000 commands at random addresses agree');
});

t.test('what is not a PTZCmd reads as null', async (t) => {
  t.equal(parsePtzCmd('A50F0100000000B6'), null, 'checksum off by one');
  t.equal(parsePtzCmd('A50E0100000000B4'), null, 'a wrong check nibble');
  t.equal(parsePtzCmd('A50F0100000000'), null, 'short');
  t.equal(parsePtzCmd('zz0F0100000000B5'), null, 'not hex');
  t.same(parsePtzCmd('a50f0100000000b5'), { address: 1, command: { action: 'stop' } }, 'lower case is read');
});
