import type { Region, Tile, WallView } from '../../../gateway/src/control/model.js';

/** A rectangle in monitor units: (0,0) is the wall's top-left monitor corner, 1 is one monitor. */
export interface Box {
  x: number;
  y: number;
  w: number;
  h: number;
}

/** Where a tile sits on the wall, in monitor units: its region's monitors divided by the region's grid. */
export function tileBox(wall: WallView, tile: Tile): Box | null {
  const region: Region | undefined = wall.regions.find((r) => r.id === tile.region);
  if (!region) return null;
  const { screens, layout } = region;
  const cw = screens.colSpan / layout.cols;
  const ch = screens.rowSpan / layout.rows;
  return { x: screens.col + tile.col * cw, y: screens.row + tile.row * ch, w: tile.colSpan * cw, h: tile.rowSpan * ch };
}

/** Monitor N (from 1, row by row) as a box; the whole wall when N is null. */
export function screenBox(wall: WallView, screen: number | null): Box | null {
  const { rows, cols } = wall.screens;
  if (screen === null) return { x: 0, y: 0, w: cols, h: rows };
  if (!Number.isInteger(screen) || screen < 1 || screen > rows * cols) return null;
  return { x: (screen - 1) % cols, y: Math.floor((screen - 1) / cols), w: 1, h: 1 };
}

export const intersects = (a: Box, b: Box) => a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;

/** `box` as CSS percentages of `frame`; a tile spanning monitors overflows its screen and is clipped there. */
export function percentStyle(box: Box, frame: Box): string {
  const pct = (n: number) => `${(n * 100).toFixed(4)}%`;
  return `left:${pct((box.x - frame.x) / frame.w)};top:${pct((box.y - frame.y) / frame.h)};width:${pct(box.w / frame.w)};height:${pct(box.h / frame.h)}`;
}
