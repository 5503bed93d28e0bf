import { isDeepStrictEqual } from 'node:util';
import fc from 'fast-check';
import t from 'tap';
import type { ControlClient, ServerMessage } from '../../scripts/sim/control-client.js';
import type { WallView } from '../../gateway/src/control/model.js';
import { messageSchemas } from '../../gateway/src/control/protocol.js';
import { errorCodes } from '../../gateway/src/errors.js';
import { SCREENS_2X2, startControlGateway, type ControlGateway } from '../helpers/control.js';
import { checkProperty, fuzzParameters, oneAtATime } from '../helpers/fuzz.js';

/**
 * The control protocol, fuzzed over a real WebSocket against a real gateway: every frame, however
 * broken, gets exactly one answer, an ack or `{type:'error', code}` with a code the gateway declares;
 * the gateway never crashes; a refused message changes nothing, and an accepted one leaves the stored
 * wall equal to what its subscribers rebuilt from the deltas (no half-made change).
 */

const MAX_MESSAGE_BYTES = 2_048;
const WALL = 'fz';
const TYPES = Object.keys(messageSchemas);
/** A placeholder for "the wall's version now", so near-valid changes are often really applied. */
const CURRENT = Symbol('current version');

/** Values that are almost right: the right kind of thing with a wrong detail, or the wrong kind altogether. */
const near = {
  wallId: fc.oneof({ arbitrary: fc.constant(WALL), weight: 8 }, { arbitrary: fc.constantFrom('nope', '', 'FZ', 'fz ', '../fz', 'x'.repeat(65)), weight: 1 }),
  version: fc.oneof({ arbitrary: fc.constant(CURRENT), weight: 6 }, { arbitrary: fc.constantFrom(0, -1, 1e21, 1.5, '1', null), weight: 1 }),
  tileId: fc.constantFrom('s1-1', 's1-2', 's2-1', 's4-4', 'wall-1', 's1-99', 's99-1', 's1-0', 'x'),
  tileIds: fc.oneof(
    fc.uniqueArray(fc.constantFrom('s1-1', 's1-2', 's2-1', 's3-1', 's4-4', 'wall-1'), { minLength: 1, maxLength: 4 }),
    fc.constantFrom([], ['s1-1', 's1-1'], 's1-1', [1]),
  ),
  camera: fc.constantFrom('a1', 'a2', 'a3', 'b1', 'gone', ''),
  name: fc.oneof(fc.string({ minLength: 0, maxLength: 8 }), fc.constantFrom('Evening', 'x'.repeat(101), 'a\u0000b', 'a\nb')),
  layout: fc.oneof(
    fc.constantFrom('1', '4', '9', '16', '1+5', '1+7', '2x3', 'bogus', '', '123456789'),
    fc.record({ rows: fc.integer({ min: 0, max: 17 }), cols: fc.integer({ min: 0, max: 17 }), cells: fc.array(fc.record({ row: fc.integer({ min: -1, max: 16 }), col: fc.integer({ min: -1, max: 16 }), rowSpan: fc.integer({ min: 0, max: 17 }), colSpan: fc.integer({ min: 0, max: 17 }) }), { maxLength: 5 }) }),
  ),
  target: fc.constantFrom(1, 2, 4, 5, 0, 129, 'each', 'wall', 'all'),
  id: fc.constantFrom('t1', 'p1', 'nope', ''),
  dwell: fc.constantFrom(3600, 5, 0, 86_401),
};

const content = fc.oneof(
  fc.constant({ kind: 'empty' }),
  fc.record({ kind: fc.constant('camera'), cameraId: near.camera }, { requiredKeys: ['kind', 'cameraId'] }),
  fc.record({ kind: fc.constant('camera'), cameraId: near.camera, profile: fc.constantFrom('auto', 'main', 'sub', 'hd') }),
  fc.constantFrom({ kind: 'url', url: 'rtsp://x' }, { kind: 'camera' }, null),
);

/** A plausible payload for each message type, built from near-valid values. */
const payloads: Record<string, fc.Arbitrary<Record<string, unknown>>> = {
  'walls.list': fc.constant({}),
  subscribe: fc.record({ wallId: near.wallId }),
  unsubscribe: fc.record({ wallId: near.wallId }),
  'wall.create': fc.record({ id: fc.constantFrom(WALL, 'fz2', 'new-1'), name: near.name, departmentId: fc.constantFrom('countyA', 'countyB', 'nowhere'), screens: fc.constantFrom(SCREENS_2X2, { ...SCREENS_2X2, rows: 9 }, {}), layout: near.layout }, { requiredKeys: ['name', 'departmentId', 'screens'] }),
  'wall.delete': fc.record({ wallId: near.wallId }),
  'wall.rename': fc.record({ wallId: near.wallId, baseVersion: near.version, name: near.name }),
  'layout.set': fc.record({ wallId: near.wallId, baseVersion: near.version, target: near.target, layout: near.layout }),
  'tile.assign': fc.record({ wallId: near.wallId, baseVersion: near.version, tileId: near.tileId, content }),
  lock: fc.record({ wallId: near.wallId, tileIds: near.tileIds }),
  unlock: fc.record({ wallId: near.wallId, tileIds: near.tileIds }),
  'lock.break': fc.record({ wallId: near.wallId, tileIds: near.tileIds }),
  'tour.start': fc.record(
    { wallId: near.wallId, baseVersion: near.version, name: near.name, tileIds: near.tileIds, cameras: fc.array(near.camera, { maxLength: 4 }), departmentId: fc.constantFrom('countyA', 'nowhere'), tag: fc.constantFrom('gate', ''), dwellSec: near.dwell },
    { requiredKeys: ['wallId', 'baseVersion', 'name', 'tileIds', 'dwellSec'] },
  ),
  'tour.stop': fc.record({ wallId: near.wallId, tourId: near.id }),
  'presets.list': fc.record({ wallId: near.wallId }),
  'preset.save': fc.record({ wallId: near.wallId, name: near.name }),
  'preset.recall': fc.record({ wallId: near.wallId, presetId: near.id, baseVersion: near.version }),
  'preset.delete': fc.record({ wallId: near.wallId, presetId: near.id }),
  'plan.save': fc.record({ wallId: near.wallId, name: near.name, priority: fc.constantFrom(1, 50, 100, 0, 101) }),
  'plan.activate': fc.record({ wallId: near.wallId, planId: near.id }),
  'plan.revert': fc.record({ wallId: near.wallId }),
  'plan.delete': fc.record({ wallId: near.wallId, planId: near.id }),
  'popup.dismiss': fc.record({ wallId: near.wallId, popupId: near.id }),
};

type Spoil = { drop: string } | { add: [string, unknown] } | { set: [string, unknown] } | null;

/** `{type, id, payload}` with a plausible payload, sometimes spoiled: a field dropped, added or replaced by anything. */
const nearValid = fc
  .constantFrom(...TYPES)
  .chain((type) =>
    fc.record({
      type: fc.constant(type),
      payload: payloads[type]!,
      spoil: fc.oneof(
        { arbitrary: fc.constant(null), weight: 3 },
        {
          weight: 1,
          arbitrary: fc.oneof(
          fc.record({ drop: fc.constantFrom('wallId', 'baseVersion', 'tileId', 'content', 'name', 'layout', 'tileIds') }),
          fc.record({ add: fc.tuple(fc.constantFrom('extra', '__proto__', 'constructor', 'version'), fc.jsonValue({ maxDepth: 2 })) }),
          fc.record({ set: fc.tuple(fc.constantFrom('wallId', 'baseVersion', 'tileId', 'content', 'name', 'layout', 'target', 'tileIds'), fc.jsonValue({ maxDepth: 3 })) }),
          ) as fc.Arbitrary<Spoil>,
        },
      ),
      typeCase: fc.oneof({ arbitrary: fc.constant('as is'), weight: 10 }, { arbitrary: fc.constantFrom('upper', 'suffix'), weight: 1 }),
    }),
  )
  .map(({ type, payload, spoil, typeCase }) => {
    const p: Record<string, unknown> = { ...payload };
    if (spoil && 'drop' in spoil) delete p[spoil.drop];
    else if (spoil && 'add' in spoil) p[spoil.add[0]] = spoil.add[1];
    else if (spoil && 'set' in spoil) p[spoil.set[0]] = spoil.set[1];
    return { type: typeCase === 'upper' ? type.toUpperCase() : typeCase === 'suffix' ? `${type}.x` : type, payload: p };
  });

/** Frames of any shape: text that is not JSON, JSON that is not an envelope, envelopes with odd ids, binary, oversized. */
const arbitraryFrame = fc.oneof(
  fc.string({ maxLength: 200 }).map((text) => ({ text })),
  fc.jsonValue({ maxDepth: 4 }).map((v) => ({ text: JSON.stringify(v) ?? 'null' })),
  fc.record({ type: fc.oneof(fc.constantFrom(...TYPES), fc.string({ maxLength: 20 })), id: fc.jsonValue({ maxDepth: 1 }), payload: fc.jsonValue({ maxDepth: 3 }) }).map((m) => ({ text: JSON.stringify(m) })),
  fc.uint8Array({ maxLength: 100 }).map((a) => ({ binary: Buffer.from(a) })),
  fc.integer({ min: MAX_MESSAGE_BYTES - 16, max: MAX_MESSAGE_BYTES * 3 }).map((n) => ({ text: JSON.stringify({ type: 'walls.list', id: 'big', payload: { pad: 'x'.repeat(n) } }) })),
);

type Frame = { text: string } | { binary: Buffer } | { message: { type: string; payload: Record<string, unknown> } };

const KNOWN_CODES = new Set(Object.keys(errorCodes));

async function storedWall(gw: ControlGateway): Promise<WallView | null> {
  const res = await gw.api('GET', `/api/walls/${WALL}`, { token: gw.adminToken });
  return res.status === 200 ? (res.json.wall as WallView) : null;
}

t.test('any control frame gets one ack or coded error, never crashes the gateway, and never half-changes a wall', async (t) => {
  const gw = await startControlGateway(t, {
    control: {
      maxMessageBytes: MAX_MESSAGE_BYTES,
      // The rate limit is tested elsewhere; here every frame should reach the parser.
      rate: { perSecond: 100_000, burst: 100_000 },
      // A tour that rotated in the middle of a step would be a change no message made.
      tours: { minDwellSec: 3600, prewarmMs: 0 },
    },
  });
  const opToken = await gw.userToken('op', ['operator'], ['countyA']);
  const ensureWall = async () => {
    if (await storedWall(gw)) return;
    await gw.createWall({ id: WALL, name: 'Fuzz', departmentId: 'countyA', screens: SCREENS_2X2, layout: '4' });
  };
  await ensureWall();
  const senders: Record<'admin' | 'op', ControlClient> = { admin: await gw.client(gw.adminToken), op: await gw.client(opToken) };
  /** A screen that only follows the wall: what it rebuilds from deltas must match what is stored. */
  let screen = await gw.client(gw.adminToken);
  await screen.subscribe(WALL);
  const codes = new Map<string, number>();
  let acks = 0;
  let nextId = 1;

  const { run: step, settled } = oneAtATime(async (frame: Frame, who: 'admin' | 'op') => {
    await ensureWall();
    if (!screen.walls.has(WALL)) {
      await screen.close();
      screen = await gw.client(gw.adminToken);
      await screen.subscribe(WALL);
    }
    const before = (await storedWall(gw))!;
    const client = senders[who];
    const from = client.messages.length;
    let sentId: string | null = null;
    if ('message' in frame) {
      const id = `f${nextId++}`;
      const payload = Object.fromEntries(Object.entries(frame.message.payload).map(([k, v]) => [k, v === CURRENT ? before.version : v]));
      const text = JSON.stringify({ type: frame.message.type, id, payload });
      // Far over the limit the socket is closed (1009), which the protocol test covers; over it, the id is not read.
      fc.pre(Buffer.byteLength(text) <= MAX_MESSAGE_BYTES * 3);
      if (Buffer.byteLength(text) <= MAX_MESSAGE_BYTES) sentId = id;
      client.sendRaw(text);
    } else if ('binary' in frame) client.sendRaw(frame.binary, true);
    else client.sendRaw(frame.text);

    const reply: ServerMessage = await client.next((m) => m.type === 'ack' || m.type === 'error', 5_000, from);
    const replies = () => client.messages.slice(from).filter((m) => m.type === 'ack' || m.type === 'error');
    if (reply.type === 'error') {
      if (!KNOWN_CODES.has(String(reply.code))) throw new Error(`an error without a declared code: ${JSON.stringify(reply)}`);
      codes.set(reply.code!, (codes.get(reply.code!) ?? 0) + 1);
    } else acks++;
    if (sentId !== null && reply.id !== sentId) throw new Error(`the reply names id ${JSON.stringify(reply.id)}, not ${sentId}`);

    const after = await storedWall(gw);
    if (reply.type === 'error') {
      if (!isDeepStrictEqual(after, before)) throw new Error(`a refused message (${reply.code}) changed the wall: version ${before.version} → ${after?.version}`);
    } else if (after) {
      // Whatever was accepted, the subscribers' copy built from the deltas is the stored wall, whole.
      const followed = await screen.untilVersion(WALL, after.version, 5_000);
      if (!isDeepStrictEqual(followed, after)) throw new Error(`the stored wall (version ${after.version}) differs from what its deltas built`);
    }
    if (screen.gaps.length) throw new Error(`deltas out of order: ${JSON.stringify(screen.gaps)}`);
    // One answer per frame: nothing else may arrive for it.
    await new Promise((r) => setImmediate(r));
    if (replies().length !== 1) throw new Error(`${replies().length} answers to one frame: ${JSON.stringify(replies())}`);
  });

  const who = fc.constantFrom<'admin' | 'op'>('admin', 'op');
  const nearRuns = await checkProperty(
    fc.asyncProperty(nearValid, who, async (message, sender) => step({ message }, sender)),
    fuzzParameters(5000),
  );
  const arbitraryRuns = await checkProperty(
    fc.asyncProperty(arbitraryFrame, who, async (frame, sender) => step(frame, sender)),
    fuzzParameters(5000),
  );
  await settled();
  t.ok(nearRuns > 0 && arbitraryRuns > 0, `${nearRuns} near-valid messages and ${arbitraryRuns} arbitrary frames`);
  t.ok(acks > 0, `${acks} accepted changes and queries, each checked against the deltas`);
  t.ok(codes.size >= 4, `refusals with ${codes.size} codes: ${JSON.stringify(Object.fromEntries(codes))}`);
  for (const [name, c] of Object.entries(senders)) t.equal(c.closed, null, `the ${name}'s connection is still open`);
  t.equal((await gw.api('GET', '/healthz')).status, 200, 'the gateway is up');
  const fresh = await gw.client(gw.adminToken);
  t.equal((await fresh.request('walls.list')).type, 'ack', 'and takes new connections');
});
