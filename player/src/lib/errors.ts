/**
 * A failure in one sentence for the person who caused it: who holds the lock, who changed the tile,
 * which field was wrong. Every page words the gateway's refusals the same way; a page adds only the
 * cases it says differently (the console's conflicts, the admin's network failure).
 */
import type { WallView } from '../../../gateway/src/control/model.js';
import { ApiError } from './api.js';
import { ControlError } from './control.js';
import { addStrings, t } from './i18n.js';

addStrings({
  'error.conflict': ['Tile {tile} was changed by {by} a moment ago.', '窗口 {tile} 刚被 {by} 修改。'],
  'error.conflictAny': ['Someone else changed the wall a moment ago; try again.', '大屏刚被他人修改，请重试。'],
  'error.locked': ['Tile {tile} is locked by {user}.', '窗口 {tile} 已被 {user} 锁定。'],
  'error.popup': ['Tile {tile} shows an alarm pop-up; dismiss it first.', '窗口 {tile} 正在显示告警弹窗，请先关闭弹窗。'],
  'error.forbidden': ['Your role does not allow this.', '您的角色无权执行此操作。'],
  'error.disconnected': ['Not connected to the gateway; try again once the connection is back.', '与网关的连接已断开，恢复后请重试。'],
  'error.timeout': ['The gateway did not answer in time; try again.', '网关未及时响应，请重试。'],
  'error.rate': ['Too many actions at once; wait a moment.', '操作过于频繁，请稍候。'],
  'error.network': ['The gateway cannot be reached.', '无法连接网关。'],
});

export interface ErrorContext {
  /** The tile the action was about, for a conflict or lock that does not name one. */
  tileId?: string;
}

export function errorText(e: unknown, ctx: ErrorContext = {}): string {
  const { tileId } = ctx;
  if (e instanceof ControlError) {
    const body = e.body;
    switch (e.code) {
      case 'GW_ERR_VERSION_CONFLICT': {
        const tile = tileId ? (body.current as WallView | undefined)?.tiles[tileId] : undefined;
        return tile ? t('error.conflict', { tile: tile.id, by: tile.by }) : t('error.conflictAny');
      }
      case 'GW_ERR_LOCKED': {
        const lock = (body.lock ?? {}) as { tileId?: string; username?: string; popup?: string };
        if (lock.popup) return t('error.popup', { tile: lock.tileId ?? tileId ?? '' });
        return t('error.locked', { tile: lock.tileId ?? tileId ?? '', user: lock.username ?? '?' });
      }
      case 'GW_ERR_VALIDATION':
        return issuesText(body.issues) ?? e.message;
      case 'GW_ERR_FORBIDDEN':
        return t('error.forbidden');
      case 'GW_ERR_RATE_LIMITED':
        return t('error.rate');
      case 'DISCONNECTED':
        return t('error.disconnected');
      case 'TIMEOUT':
        return t('error.timeout');
    }
    return e.message;
  }
  if (e instanceof ApiError) {
    if (e.status === 0) return t('error.network');
    return issuesText(e.issues) ?? e.message;
  }
  return (e as Error)?.message ?? String(e);
}

function issuesText(issues: unknown): string | null {
  if (!Array.isArray(issues) || issues.length === 0) return null;
  return (issues as Array<{ field: string; message: string }>).map((i) => `${i.field}: ${i.message}`).join('; ');
}

