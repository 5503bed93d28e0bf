import { DEFAULT_SPEED, type PtzCommand } from '../ptz/command.js';

/**
 * The 8-byte PTZCmd of GB/T 28181 (appendix A, the front-end device control command it takes from
 * the older PTZ protocol), as the 16 upper-case hex characters of a DeviceControl's <PTZCmd>:
 *
 *   1  0xA5
 *   2  version (high nibble, 0) and check nibble (0xA + 0x5 + version) % 16 → 0x0F
 *   3  address, low 8 bits
 *   4  instruction: bits 0x01 right, 0x02 left, 0x04 down, 0x08 up, 0x10 zoom in (tele), 0x20 zoom out
 *      (wide), 0 stop; 0x81 set preset, 0x82 go to preset, 0x83 delete preset
 *   5  pan speed (data 1)
 *   6  tilt speed, or the preset number (data 2)
 *   7  zoom speed (high nibble), address high 4 bits (low nibble)
 *   8  (sum of bytes 1..7) % 256
 *
 * Checked against open implementations (search of public code, 2026-12-06): WVP-GB28181-pro's
 * SipUtils/SIPCommander `cmdString` (the bit flags above, "A50F01" for version 0 and address 1,
 * moveSpeed in bytes 5 and 6, zoom speed as the high nibble of byte 7, checkCode = (0xA5 + 0x0F +
 * 0x01 + cmdCode + bytes 5, 6, 7) % 0x100) and `frontEndCmdString` with its preset service (0x81,
 * 0x82, 0x83 with the preset id as parameter2, byte 6); a Go implementation's tests
 * ("A50F018200050000" goto preset 5, "A50F010800640021" up at 0x64 with the checksum worked out).
 * Unlike WVP, a speed goes only in the byte of an axis that moves (a camera given a tilt speed for a
 * pan-only move may creep), as the Go tests do; WVP also bumps zoom speeds below 16 to 16, which only
 * makes sense because it passes an 8-bit value whose high nibble is kept: we take the nibble itself.
 */

export const PTZ_ADDRESS = 1;

const Bit = { Right: 0x01, Left: 0x02, Down: 0x04, Up: 0x08, ZoomIn: 0x10, ZoomOut: 0x20 } as const;
const PRESET_CODE = { set: 0x81, goto: 0x82, delete: 0x83 } as const;

/** The zoom speed a move without one gets: its speed scaled from 1..255 to 1..15. */
export const zoomSpeedOf = (speed: number) => Math.max(1, Math.min(15, Math.round(speed / 17)));

export function ptzCmdBytes(cmd: PtzCommand, address = PTZ_ADDRESS): Buffer {
  if (!Number.isInteger(address) || address < 0 || address > 0xfff) throw new RangeError(`PTZ address ${address}: 0..4095`);
  const b = Buffer.alloc(8);
  const version = 0;
  b[0] = 0xa5;
  b[1] = (version << 4) | ((0xa + 0x5 + version) % 16);
  b[2] = address & 0xff;
  let zoomNibble = 0;
  if (cmd.action === 'move') {
    const speed = cmd.speed ?? DEFAULT_SPEED;
    const pan = cmd.pan ?? 0;
    const tilt = cmd.tilt ?? 0;
    const zoom = cmd.zoom ?? 0;
    b[3] = (pan === 1 ? Bit.Right : pan === -1 ? Bit.Left : 0) | (tilt === 1 ? Bit.Up : tilt === -1 ? Bit.Down : 0) | (zoom === 1 ? Bit.ZoomIn : zoom === -1 ? Bit.ZoomOut : 0);
    b[4] = pan ? byte(speed, 'speed') : 0;
    b[5] = tilt ? byte(speed, 'speed') : 0;
    zoomNibble = zoom ? nibble(cmd.zoomSpeed ?? zoomSpeedOf(speed)) : 0;
  } else if (cmd.action === 'preset') {
    b[3] = PRESET_CODE[cmd.op];
    b[5] = byte(cmd.preset, 'preset');
  }
  b[6] = (zoomNibble << 4) | ((address >> 8) & 0x0f);
  let sum = 0;
  for (let i = 0; i < 7; i++) sum += b[i]!;
  b[7] = sum % 256;
  return b;
}

/** The <PTZCmd> text: 16 upper-case hex characters. */
export const ptzCmdHex = (cmd: PtzCommand, address = PTZ_ADDRESS) => ptzCmdBytes(cmd, address).toString('hex').toUpperCase();

function byte(n: number, what: string) {
  if (!Number.isInteger(n) || n < 1 || n > 255) throw new RangeError(`PTZ ${what} ${n}: 1..255`);
  return n;
}
function nibble(n: number) {
  if (!Number.isInteger(n) || n < 1 || n > 15) throw new RangeError(`PTZ zoom speed ${n}: 1..15`);
  return n;
}

/** What a PTZCmd says, read back (the simulator records it; tests check it); null when it is not one. */
export function parsePtzCmd(hex: string): { address: number; command: PtzCommand } | null {
  if (!/^[0-9A-Fa-f]{16}$/.test(hex)) return null;
  const b = Buffer.from(hex, 'hex');
  if (b[0] !== 0xa5 || (b[1]! & 0x0f) !== ((0xa + 0x5 + (b[1]! >> 4)) % 16)) return null;
  let sum = 0;
  for (let i = 0; i < 7; i++) sum += b[i]!;
  if (sum % 256 !== b[7]) return null;
  const address = b[2]! | ((b[6]! & 0x0f) << 8);
  const code = b[3]!;
  if (code === 0) return { address, command: { action: 'stop' } };
  const op = (Object.keys(PRESET_CODE) as (keyof typeof PRESET_CODE)[]).find((k) => PRESET_CODE[k] === code);
  if (op) return b[5] ? { address, command: { action: 'preset', op, preset: b[5] } } : null;
  if (code & 0xc0) return null;
  const axis = (plus: number, minus: number) => ((code & plus ? 1 : 0) - (code & minus ? 1 : 0)) as -1 | 0 | 1;
  const pan = axis(Bit.Right, Bit.Left);
  const tilt = axis(Bit.Up, Bit.Down);
  const zoom = axis(Bit.ZoomIn, Bit.ZoomOut);
  const speed = pan ? b[4]! : tilt ? b[5]! : undefined;
  return {
    address,
    command: { action: 'move', pan, tilt, zoom, ...(speed ? { speed } : {}), ...(zoom && b[6]! >> 4 ? { zoomSpeed: b[6]! >> 4 } : {}) },
  };
}
