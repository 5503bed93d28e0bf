import t from 'tap';
import type { Tile, WallView } from '../../../gateway/src/control/model.js';
import { namedLayout, screenRegion, wallRegion } from '../../../gateway/src/control/layouts.js';
import { intersects, percentStyle, screenBox, tileBox } from '../../../player/src/lib/geometry.js';

const screens = { rows: 2, cols: 3, width: 1920, height: 1080 };

function wall(regions: WallView['regions'], tiles: Array<Partial<Tile> & Pick<Tile, 'id' | 'region' | 'row' | 'col' | 'rowSpan' | 'colSpan'>>): WallView {
  return {
    id: 'w',
    name: 'w',
    departmentId: 'root',
    screens,
    regions,
    tiles: Object.fromEntries(tiles.map((x) => [x.id, x as Tile])),
    tours: {},
    plan: null,
    popups: {},
    version: 1,
    updatedAt: 0,
    updatedBy: 'x',
  };
}

t.test('monitors are numbered row by row from 1; anything else is not a screen of the wall', async (t) => {
  const w = wall([], []);
  t.same(screenBox(w, 1), { x: 0, y: 0, w: 1, h: 1 });
  t.same(screenBox(w, 3), { x: 2, y: 0, w: 1, h: 1 });
  t.same(screenBox(w, 4), { x: 0, y: 1, w: 1, h: 1 });
  t.same(screenBox(w, null), { x: 0, y: 0, w: 3, h: 2 }, 'no screen: the whole wall');
  for (const bad of [0, 7, 1.5, Number.NaN]) t.equal(screenBox(w, bad), null, `screen ${bad} is refused`);
});

t.test('a tile of a monitor layout sits inside its monitor', async (t) => {
  const region = screenRegion(screens, 5, namedLayout('4')!);
  const w = wall([region], [{ id: 's5-4', region: 's5', row: 1, col: 1, rowSpan: 1, colSpan: 1 }]);
  const box = tileBox(w, w.tiles['s5-4']!)!;
  t.same(box, { x: 1.5, y: 1.5, w: 0.5, h: 0.5 }, 'bottom-right quarter of monitor 5 (row 2, column 2)');
  t.ok(intersects(box, screenBox(w, 5)!), 'shown on monitor 5');
  t.notOk(intersects(box, screenBox(w, 4)!), 'not on its neighbour: touching edges do not count');
  t.equal(percentStyle(box, screenBox(w, 5)!), 'left:50.0000%;top:50.0000%;width:50.0000%;height:50.0000%');
});

t.test('a tile spanning monitors shows its part on each, clipped by the screen', async (t) => {
  // One big tile over the wall's left two columns and both rows, in a wall-wide 1+5 layout.
  const region = wallRegion(screens, namedLayout('1+5')!);
  const big = namedLayout('1+5')!.cells[0]!;
  const w = wall([region], [{ id: 'wall-1', region: 'wall', ...big }]);
  const box = tileBox(w, w.tiles['wall-1']!)!;
  t.same(box, { x: 0, y: 0, w: 2, h: (2 / 3) * 2 }, 'two monitors wide, two thirds of the wall high');
  t.same([1, 2, 3, 4, 5, 6].filter((n) => intersects(box, screenBox(w, n)!)), [1, 2, 4, 5], 'on monitors 1, 2, 4 and 5');
  t.equal(
    percentStyle(box, screenBox(w, 2)!),
    'left:-100.0000%;top:0.0000%;width:200.0000%;height:133.3333%',
    'monitor 2 draws the tile from one monitor to its left, so it shows the right half',
  );
});

t.test('a tile of a region the wall does not have is not drawn', async (t) => {
  const w = wall([], [{ id: 's1-1', region: 's1', row: 0, col: 0, rowSpan: 1, colSpan: 1 }]);
  t.equal(tileBox(w, w.tiles['s1-1']!), null);
});
