/**
 * The console's changes to tiles (assign, clear, lock) and what an operator is told when the gateway
 * refuses one: who changed the tile meanwhile, who holds its lock, which field was wrong.
 */
import type { WallView } from '../../../gateway/src/control/model.js';
import { ApiError } from '../lib/api.js';
import { ControlError } from '../lib/control.js';
import { errorText } from '../lib/errors.js';
import { addStrings, t } from '../lib/i18n.js';
import type { CameraRef, ConsoleContext } from './context.js';

addStrings({
  'console.err.conflict': [
    'Tile {tile} was changed by {by} a moment ago; the console now shows its current content. Drop again to replace it.',
    '窗口 {tile} 刚被 {by} 修改，控制台已显示其最新内容。如需替换请重新拖放。',
  ],
  'console.err.conflictAny': ['Someone else changed the wall a moment ago; the console now shows it as it is. Try again.', '大屏刚被他人修改，控制台已显示最新状态，请重试。'],
  'console.err.noWall': ['No wall is open.', '未打开大屏。'],
  'console.assigned': ['{camera} is on tile {tile}.', '{camera} 已上墙至窗口 {tile}。'],
  'console.cleared': ['Cleared {tiles}.', '已清空 {tiles}。'],
  'console.locked': ['Locked {tiles}.', '已锁定 {tiles}。'],
  'console.unlocked': ['Unlocked {tiles}.', '已解锁 {tiles}。'],
  'console.dismissed': ['The alarm pop-up is off the wall; the alarm itself stays open.', '告警弹窗已关闭，告警本身仍未处理。'],
  'console.broken': ['Broke the lock of {holders} on {tiles}.', '已强制解除 {holders} 对 {tiles} 的锁定。'],
});

/**
 * The shared wording, but for a conflict: the console already shows the wall as it is now, and the
 * operator decides again by dropping again.
 */
export function explain(e: unknown, tileId?: string): string {
  if (e instanceof ControlError && e.code === 'GW_ERR_VERSION_CONFLICT') {
    const tile = tileId ? (e.body.current as WallView | undefined)?.tiles[tileId] : undefined;
    return tile ? t('console.err.conflict', { tile: tile.id, by: tile.by }) : t('console.err.conflictAny');
  }
  return errorText(e, { tileId });
}

/** The field names a validation refusal points at, to mark the inputs at fault. */
export function fieldsAtFault(e: unknown): Map<string, string> {
  const issues = e instanceof ControlError ? e.body.issues : e instanceof ApiError ? e.issues : null;
  const out = new Map<string, string>();
  if (Array.isArray(issues)) for (const i of issues as Array<{ field: string; message: string }>) out.set(i.field.replace(/\[\d+\]$/, ''), i.message);
  return out;
}

function wallOrSay(ctx: ConsoleContext): WallView | null {
  const wall = ctx.wall();
  if (!wall) ctx.notify(t('console.err.noWall'), 'error');
  return wall;
}

/**
 * Puts a camera on a tile. The base is the wall as the console shows it: a tile somebody changed
 * after that is refused rather than overwritten, and the follower already holds their change.
 */
export async function assignCamera(ctx: ConsoleContext, tileId: string, camera: CameraRef): Promise<boolean> {
  const wall = wallOrSay(ctx);
  if (!wall) return false;
  try {
    await ctx.conn.request('tile.assign', { wallId: wall.id, baseVersion: wall.version, tileId, content: { kind: 'camera', cameraId: camera.cameraId } });
    ctx.notify(t('console.assigned', { camera: camera.name, tile: tileId }), 'ok');
    return true;
  } catch (e) {
    ctx.notify(explain(e, tileId), 'error');
    return false;
  }
}

/** Empties tiles; each is its own change, so one refused tile does not hold back the others. */
export async function clearTiles(ctx: ConsoleContext, tileIds: string[]): Promise<void> {
  const wall = wallOrSay(ctx);
  if (!wall || tileIds.length === 0) return;
  const base = wall.version;
  const outcomes = await Promise.allSettled(
    tileIds.map((tileId) => ctx.conn.request('tile.assign', { wallId: wall.id, baseVersion: base, tileId, content: { kind: 'empty' } })),
  );
  const failed = outcomes.map((o, i) => (o.status === 'rejected' ? explain(o.reason, tileIds[i]) : null)).filter((m): m is string => m !== null);
  if (failed.length) ctx.notify([...new Set(failed)].join(' '), 'error');
  else ctx.notify(t('console.cleared', { tiles: tileIds.join(', ') }), 'ok');
}

export async function lockTiles(ctx: ConsoleContext, type: 'lock' | 'unlock' | 'lock.break', tileIds: string[]): Promise<void> {
  const wall = wallOrSay(ctx);
  if (!wall || tileIds.length === 0) return;
  try {
    const ack = await ctx.conn.request<{ broken: Array<{ tile: string; holder: string }> }>(type, { wallId: wall.id, tileIds });
    const tiles = tileIds.join(', ');
    if (type === 'lock.break') {
      const holders = [...new Set(ack.broken.map((b) => b.holder))].join(', ');
      ctx.notify(holders ? t('console.broken', { holders, tiles: ack.broken.map((b) => b.tile).join(', ') }) : t('console.unlocked', { tiles }), 'ok');
    } else {
      ctx.notify(t(type === 'lock' ? 'console.locked' : 'console.unlocked', { tiles }), 'ok');
    }
  } catch (e) {
    ctx.notify(explain(e, tileIds[0]), 'error');
  }
}

/** Takes alarm pop-ups off the wall (the alarms stay open for whoever handles them). */
export async function dismissPopups(ctx: ConsoleContext, popupIds: string[]): Promise<void> {
  const wall = wallOrSay(ctx);
  if (!wall || popupIds.length === 0) return;
  try {
    for (const popupId of popupIds) await ctx.conn.request('popup.dismiss', { wallId: wall.id, popupId });
    ctx.notify(t('console.dismissed'), 'ok');
  } catch (e) {
    ctx.notify(explain(e), 'error');
  }
}
