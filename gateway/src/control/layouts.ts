import type { FieldIssue } from '../errors.js';
import type { LayoutGrid, Region, ScreenGrid, TileCell } from './model.js';

const cell = (row: number, col: number, rowSpan = 1, colSpan = 1): TileCell => ({ row, col, rowSpan, colSpan });

/** An n×n grid, row by row. */
function square(n: number): TileCell[] {
  const cells: TileCell[] = [];
  for (let r = 0; r < n; r++) for (let c = 0; c < n; c++) cells.push(cell(r, c));
  return cells;
}

/** One big tile of `big`×`big` in the top-left corner of an n×n grid, the rest single cells around it. */
function onePlus(n: number, big: number): TileCell[] {
  const cells = [cell(0, 0, big, big)];
  for (let r = 0; r < n; r++) for (let c = 0; c < n; c++) if (r >= big || c >= big) cells.push(cell(r, c));
  return cells;
}

/** 1 large tile in the centre of a 4×4 grid with 12 around it. */
function centred(): TileCell[] {
  const cells = [cell(1, 1, 2, 2)];
  for (let r = 0; r < 4; r++) for (let c = 0; c < 4; c++) if (!(r >= 1 && r <= 2 && c >= 1 && c <= 2)) cells.push(cell(r, c));
  return cells;
}

const NAMED: Record<string, { rows: number; cols: number; cells: () => TileCell[] }> = {
  '1': { rows: 1, cols: 1, cells: () => square(1) },
  '4': { rows: 2, cols: 2, cells: () => square(2) },
  '1+5': { rows: 3, cols: 3, cells: () => onePlus(3, 2) },
  '1+7': { rows: 4, cols: 4, cells: () => onePlus(4, 3) },
  '9': { rows: 3, cols: 3, cells: () => square(3) },
  '1+12': { rows: 4, cols: 4, cells: centred },
  '16': { rows: 4, cols: 4, cells: () => square(4) },
  '25': { rows: 5, cols: 5, cells: () => square(5) },
  '36': { rows: 6, cols: 6, cells: () => square(6) },
  '64': { rows: 8, cols: 8, cells: () => square(8) },
};
/** The usual names by tile count. */
const ALIASES: Record<string, string> = { '6': '1+5', '8': '1+7', '13': '1+12' };

export const LAYOUT_NAMES = [...Object.keys(NAMED), ...Object.keys(ALIASES)];

export const MAX_GRID = 16;
export const MAX_TILES_PER_REGION = 64;

export function namedLayout(name: string): LayoutGrid | null {
  const key = ALIASES[name] ?? name;
  const spec = NAMED[key];
  return spec ? { name: key, rows: spec.rows, cols: spec.cols, cells: spec.cells() } : null;
}

/** A custom grid: every cell inside it, no two overlapping. Issues name the field under `field`. */
export function customLayout(input: { rows: number; cols: number; cells: TileCell[] }, field: string, issues: FieldIssue[]): LayoutGrid | null {
  const { rows, cols, cells } = input;
  if (cells.length > MAX_TILES_PER_REGION) {
    issues.push({ field: `${field}.cells`, message: `at most ${MAX_TILES_PER_REGION} tiles` });
    return null;
  }
  const taken = new Set<number>();
  cells.forEach((c, i) => {
    if (c.row + c.rowSpan > rows || c.col + c.colSpan > cols) {
      issues.push({ field: `${field}.cells[${i}]`, message: `does not fit in the ${rows}×${cols} grid` });
      return;
    }
    for (let r = c.row; r < c.row + c.rowSpan; r++) {
      for (let k = c.col; k < c.col + c.colSpan; k++) {
        if (taken.has(r * cols + k)) {
          issues.push({ field: `${field}.cells[${i}]`, message: 'overlaps an earlier tile' });
          return;
        }
        taken.add(r * cols + k);
      }
    }
  });
  return issues.length ? null : { name: 'custom', rows, cols, cells: cells.map((c) => cell(c.row, c.col, c.rowSpan, c.colSpan)) };
}

/** Monitor number n (from 1, row-major) as a region. */
export function screenRegion(screens: ScreenGrid, n: number, layout: LayoutGrid): Region {
  const i = n - 1;
  return { id: `s${n}`, screens: cell(Math.floor(i / screens.cols), i % screens.cols), layout };
}

export function wallRegion(screens: ScreenGrid, layout: LayoutGrid): Region {
  return { id: 'wall', screens: cell(0, 0, screens.rows, screens.cols), layout };
}

/** The pixel size of a tile: its share of the region's monitors. */
export function tilePixels(screens: ScreenGrid, region: Region, c: TileCell): { width: number; height: number } {
  const regionWidth = region.screens.colSpan * screens.width;
  const regionHeight = region.screens.rowSpan * screens.height;
  return {
    width: Math.round((regionWidth * c.colSpan) / region.layout.cols),
    height: Math.round((regionHeight * c.rowSpan) / region.layout.rows),
  };
}
