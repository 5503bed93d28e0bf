import t from 'tap';
import { customLayout, LAYOUT_NAMES, namedLayout, screenRegion, tilePixels, wallRegion } from '../../../gateway/src/control/layouts.js';
import { applyDelta, popupOn, type WallView } from '../../../gateway/src/control/model.js';
import { validatePayload } from '../../../gateway/src/control/protocol.js';
import type { FieldIssue } from '../../../gateway/src/errors.js';

t.test('named layouts have the tile counts their names promise and cover their grid exactly', async (t) => {
  const counts: Record<string, number> = { '1': 1, '4': 4, '6': 6, '1+5': 6, '8': 8, '1+7': 8, '9': 9, '13': 13, '1+12': 13, '16': 16, '25': 25, '36': 36, '64': 64 };
  for (const name of LAYOUT_NAMES) {
    const grid = namedLayout(name)!;
    t.equal(grid.cells.length, counts[name], `${name}: ${grid.cells.length} tiles`);
    const area = grid.cells.reduce((n, c) => n + c.rowSpan * c.colSpan, 0);
    t.equal(area, grid.rows * grid.cols, `${name} covers its ${grid.rows}×${grid.cols} grid`);
    const issues: FieldIssue[] = [];
    t.ok(customLayout(grid, 'layout', issues), `${name} passes the custom checks`);
  }
  t.match(namedLayout('1+12')!.cells[0], { row: 1, col: 1, rowSpan: 2, colSpan: 2 }, 'the big tile of 1+12 is in the centre');
  t.equal(namedLayout('7'), null);
});

t.test('custom layouts: tiles must fit and not overlap, and each fault names its cell', async (t) => {
  const issues: FieldIssue[] = [];
  const grid = customLayout({ rows: 2, cols: 3, cells: [{ row: 0, col: 0, rowSpan: 2, colSpan: 2 }, { row: 1, col: 1, rowSpan: 1, colSpan: 1 }, { row: 0, col: 2, rowSpan: 3, colSpan: 1 }] }, 'layout', issues);
  t.equal(grid, null);
  t.same(issues, [
    { field: 'layout.cells[1]', message: 'overlaps an earlier tile' },
    { field: 'layout.cells[2]', message: 'does not fit in the 2×3 grid' },
  ]);
});

t.test('tile pixel sizes follow the region: per monitor, and spanned across the wall', async (t) => {
  const screens = { rows: 2, cols: 3, width: 1920, height: 1080 };
  const nine = namedLayout('9')!;
  t.same(tilePixels(screens, screenRegion(screens, 5, nine), nine.cells[0]!), { width: 640, height: 360 });
  t.match(screenRegion(screens, 5, nine).screens, { row: 1, col: 1 }, 'monitor 5 of a 2×3 wall is in the middle of the bottom row');
  const wide = customLayout({ rows: 1, cols: 2, cells: [{ row: 0, col: 0, rowSpan: 1, colSpan: 2 }] }, 'layout', [])!;
  t.same(tilePixels(screens, wallRegion(screens, wide), wide.cells[0]!), { width: 5760, height: 2160 });
});

t.test('applyDelta applies only the next version', async (t) => {
  const wall: WallView = { id: 'w', name: 'W', departmentId: 'd', screens: { rows: 1, cols: 1, width: 1920, height: 1080 }, regions: [], tiles: {}, tours: {}, plan: null, popups: {}, version: 3, updatedAt: 0, updatedBy: 'x' };
  t.notOk(applyDelta(wall, { wallId: 'w', version: 5, at: 1, by: 'a', cause: 'tile.assign', ref: null, name: 'skipped' }), 'a gap is refused');
  t.notOk(applyDelta(wall, { wallId: 'other', version: 4, at: 1, by: 'a', cause: 'tile.assign', ref: null }), 'another wall\'s delta is refused');
  t.equal(wall.name, 'W');
  t.ok(applyDelta(wall, { wallId: 'w', version: 4, at: 9, by: 'b', cause: 'wall.rename', ref: 'r1', name: 'New', plan: null }));
  t.match(wall, { name: 'New', version: 4, updatedAt: 9, updatedBy: 'b' });
  t.ok(applyDelta(wall, { wallId: 'w', version: 5, at: 10, by: 'tour', cause: 'tour.rotate', ref: null, tours: [], removedTours: ['gone'] }));

  // A layout brings whole tiles; a later change only what changed, and the tile keeps its place and size.
  const tile = { id: 's1-1', region: 's1', row: 0, col: 0, rowSpan: 1, colSpan: 1, width: 1920, height: 1080, content: { kind: 'empty' as const }, stream: null, lock: null, popup: null, v: 6, by: 'a', at: 11 };
  const regions = [screenRegion(wall.screens, 1, namedLayout('1')!)];
  t.ok(applyDelta(wall, { wallId: 'w', version: 6, at: 11, by: 'a', cause: 'layout.set', ref: null, regions, tiles: [tile] }));
  const change = { id: 's1-1', content: { kind: 'empty' as const }, stream: null, lock: { userId: 'u', username: 'a', at: 12 }, popup: null, v: 7, by: 'a', at: 12 };
  t.notOk(applyDelta(wall, { wallId: 'w', version: 7, at: 12, by: 'a', cause: 'lock', ref: null, changes: [{ ...change, id: 's9-9' }] }), 'a change to an unknown tile is refused');
  t.ok(applyDelta(wall, { wallId: 'w', version: 7, at: 12, by: 'a', cause: 'lock', ref: null, changes: [change] }));
  t.same(wall.tiles['s1-1'], { ...tile, lock: change.lock, v: 7, at: 12 });

  const cam = { cameraId: 'c', name: 'C', departmentId: 'd', hasSub: false };
  const popup = { id: 'p1', label: 'L', priority: 50, tiles: { 's1-1': cam }, alarmId: 'a1', vehicleId: 'v1', at: 13 };
  t.ok(applyDelta(wall, { wallId: 'w', version: 8, at: 13, by: 'alarm', cause: 'popup.show', ref: null, popups: [popup], changes: [{ ...change, popup: 'p1', v: 8 }] }));
  t.same(wall.popups, { p1: popup });
  t.equal(wall.tiles['s1-1']!.popup, 'p1');
  t.ok(applyDelta(wall, { wallId: 'w', version: 9, at: 14, by: 'alarm', cause: 'popup.clear', ref: null, removedPopups: ['p1'], changes: [{ ...change, v: 9 }] }));
  t.same(wall.popups, {});
});

t.test('a tile shows the highest-priority pop-up covering it, the earliest of equal priority', async (t) => {
  const cam = { cameraId: 'c', name: 'C', departmentId: 'd', hasSub: false };
  const popup = (id: string, priority: number, at: number, tiles: string[]) => ({ id, label: id, priority, at, alarmId: id, vehicleId: 'v', tiles: Object.fromEntries(tiles.map((x) => [x, cam])) });
  const popups = { low: popup('low', 10, 1, ['a', 'b']), high: popup('high', 90, 5, ['b']), same: popup('same', 10, 3, ['a', 'c']) };
  t.equal(popupOn(popups, 'a')?.id, 'low', 'equal priority: the earlier keeps the tile');
  t.equal(popupOn(popups, 'b')?.id, 'high', 'a higher priority pre-empts');
  t.equal(popupOn(popups, 'c')?.id, 'same');
  t.equal(popupOn(popups, 'd'), null);
});

t.test('payload validation names every bad field, unknown fields included', async (t) => {
  t.throws(() => validatePayload('layout.set', { wallId: 'w', baseVersion: 1, target: 0, layout: { rows: 17, cols: 1, cells: [] } }), {
    code: 'GW_ERR_VALIDATION',
    issues: [{ field: 'target' }, { field: 'layout' }],
  });
  t.throws(() => validatePayload('wall.create', { name: 'x\u0007', departmentId: 'd', screens: { rows: 1, cols: 1, width: 1920, height: 1080 }, colour: 'red' }), {
    code: 'GW_ERR_VALIDATION',
    issues: [{ field: 'colour', message: 'unexpected property' }, { field: 'name' }],
  });
  t.same(validatePayload('tile.assign', { wallId: 'w', baseVersion: 0, tileId: 'wall-3', content: { kind: 'empty' } }).tileId, 'wall-3');
});
