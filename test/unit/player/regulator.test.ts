import t from 'tap';
import type { Tile, WallView } from '../../../gateway/src/control/model.js';
import type { VehicleLive } from '../../../gateway/src/vehicles/model.js';
import { ControlError, LiveSubscription, type ConnectionState, type ControlConnection } from '../../../player/src/lib/control.js';
import { isLater, VehicleDirectory, type VehicleView } from '../../../player/src/regulator/vehicles.js';
import { planTiles } from '../../../player/src/regulator/wall-target.js';

/** The regulator's logic that needs no page: which state of a vehicle is later, which tiles take channels, subscriptions kept alive. */

const live = (positionAt: number | null, lastReportAt: number | null, status: 'online' | 'offline' = 'online'): VehicleLive => ({
  position: positionAt === null ? null : { lat: 32, lon: 118, speed: 10, heading: 0, at: positionAt },
  status,
  moving: true,
  lastReportAt,
  openAlarms: 0,
});

const vehicle = (l: VehicleLive, company = 'Linjiang Coaches') => ({ id: 'v1', plate: '苏A12345', company, live: l }) as unknown as VehicleView;

t.test('a vehicle read over REST keeps the later live state', async (t) => {
  t.ok(isLater(live(2_000, 2_000), live(1_000, 3_000)), 'a later position wins over a later report');
  t.ok(isLater(live(1_000, 3_000), live(1_000, 2_000)), 'the same position: the later report wins');
  t.notOk(isLater(live(1_000, 2_000, 'offline'), live(1_000, 2_000)), 'a tie keeps what is held');
  t.ok(isLater(live(1_000, 1_000), live(null, null)), 'any position is later than none');

  const directory = new VehicleDirectory();
  directory.remember(vehicle(live(1_000, 1_000)));
  directory.applyPosition({ id: 'v1', plate: '苏A12345', category: 'passenger', lat: 32.1, lon: 118.1, speed: 50, heading: 90, at: 5_000, status: 'online', moving: true });
  const kept = directory.remember(vehicle(live(3_000, 3_000), 'Renamed Coaches'));
  t.equal(kept.company, 'Renamed Coaches', 'the REST answer’s own fields are taken');
  t.equal(kept.live.position?.at, 5_000, 'but an older REST live state does not replace the feed’s');
  t.equal(kept.live.lastReportAt, 5_000, 'the feed’s position counts as a report');
  t.equal(directory.remember(vehicle(live(9_000, 9_000))).live.position?.at, 9_000, 'a later REST live state is taken');
});

const tile = (id: string, extra: Partial<Tile> = {}): Tile =>
  ({ id, region: 's1', row: 0, col: Number(id.slice(3)) - 1, rowSpan: 1, colSpan: 1, width: 960, height: 540, content: { kind: 'empty' }, stream: null, lock: null, popup: null, v: 1, by: 'x', at: 0, ...extra }) as Tile;

function wall(tiles: Tile[]): WallView {
  return {
    id: 'w',
    name: 'w',
    departmentId: 'root',
    screens: { rows: 1, cols: 1, width: 1920, height: 1080 },
    regions: [{ id: 's1', screens: { row: 0, col: 0, rowSpan: 1, colSpan: 1 }, layout: { name: '4', rows: 2, cols: 2, cells: [] } }],
    tiles: Object.fromEntries(tiles.map((x) => [x.id, x])),
    tours: {},
    plan: null,
    popups: {},
    version: 1,
    updatedAt: 0,
    updatedBy: 'x',
  } as WallView;
}

t.test('channels go onto consecutive tiles, passing over pop-ups and other people’s locks', async (t) => {
  const w = wall([
    tile('s1-1'),
    tile('s1-2', { popup: 'p1' }),
    tile('s1-3', { lock: { userId: 'u-other', username: 'bob', at: 0 } }),
    tile('s1-4', { lock: { userId: 'u-me', username: 'me', at: 0 } }),
  ]);
  const plan = planTiles(w, 's1-1', 3, 'u-me');
  t.same(plan.targets.map((x) => x.id), ['s1-1', 's1-4'], 'the free tile and the one this user locked');
  t.same(plan.skipped.map((s) => s.tile.id), ['s1-2', 's1-3'], 'the pop-up and bob’s lock are passed over');
  t.match(plan.skipped[1]!.why, /bob/, 'naming the lock’s holder');
  t.equal(plan.left, 1, 'one channel has no tile');
  t.same(planTiles(w, 's1-4', 1, 'u-me').targets.map((x) => x.id), ['s1-4'], 'from the chosen tile on');
});

/** A connection as a subscription sees it: its state, its open hooks, and requests answered by `answer`. */
function fakeConnection(answer: (n: number) => Promise<unknown>) {
  const hooks = new Set<() => void>();
  let n = 0;
  const conn = {
    state: 'open' as ConnectionState,
    onOpen(hook: () => void) {
      hooks.add(hook);
      if (conn.state === 'open') hook();
      return () => hooks.delete(hook);
    },
    request: () => answer(++n),
    reopen() {
      conn.state = 'open';
      for (const hook of hooks) hook();
    },
  };
  return conn;
}

t.test('a subscription is tried again after a refusal, stops on a lost connection, and starts again on the next', async (t) => {
  const refused = () => Promise.reject(new ControlError('GW_ERR_RATE_LIMITED', 'too many', {}));
  const answers: Array<() => Promise<unknown>> = [refused, refused, () => Promise.resolve('ok')];
  const conn = fakeConnection((n) => (answers[n - 1] ?? (() => Promise.resolve('ok')))());
  const got: unknown[] = [];
  const failures: number[] = [];
  const sub = new LiveSubscription(conn as unknown as ControlConnection, async () => void got.push(await conn.request()), (_e, _tries, retryInMs) => failures.push(retryInMs));
  await sub.refresh();
  t.same(got, ['ok'], 'answered at the third attempt');
  t.same(failures, [500, 1_000], 'after waiting longer each time');

  const lost = fakeConnection(() => Promise.reject(new ControlError('DISCONNECTED', 'lost', {})));
  let attempts = 0;
  const sub2 = new LiveSubscription(lost as unknown as ControlConnection, async () => {
    attempts++;
    await lost.request();
  });
  await sub2.refresh();
  t.equal(attempts, 1, 'a lost connection is not tried again at once');
  lost.state = 'closed';
  lost.reopen();
  await sub2.refresh();
  t.equal(attempts, 2, 'but at the next open');
  sub2.stop();
  lost.reopen();
  t.equal(attempts, 2, 'and never once stopped');
});
