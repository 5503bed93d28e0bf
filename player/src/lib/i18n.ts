/**
 * Labels in Chinese and English. Each page declares its strings next to its code as
 * `{key: [English, 中文]}`, so a label and its translation are always written together.
 */
export type Language = 'zh' | 'en';
type Pair = readonly [en: string, zh: string];

const strings = new Map<string, Pair>();
const STORAGE_KEY = 'wallgate.language';
let current: Language = 'zh';

export function addStrings(table: Record<string, Pair>): void {
  for (const [key, pair] of Object.entries(table)) strings.set(key, pair);
}

/** The label for `key` in the current language, with `{name}` placeholders filled from `vars`. */
export function t(key: string, vars: Record<string, string | number> = {}): string {
  const pair = strings.get(key);
  const text = pair ? pair[current === 'en' ? 0 : 1] : key;
  return text.replace(/\{(\w+)\}/g, (m, name: string) => (name in vars ? String(vars[name]) : m));
}

export const language = (): Language => current;

/** Whether `key` has a translation (an error's own sentence, or only its code's general one). */
export const hasString = (key: string): boolean => strings.has(key);

/** Both texts of `key`, for the tests that hold every translation complete. */
export const translationOf = (key: string): Pair | undefined => strings.get(key);

/** The user's own choice wins over the gateway's default. */
export function initLanguage(fallback: Language): Language {
  const stored = localStorage.getItem(STORAGE_KEY);
  current = stored === 'en' || stored === 'zh' ? stored : fallback;
  document.documentElement.lang = current === 'zh' ? 'zh-CN' : 'en';
  return current;
}

export function chooseLanguage(lang: Language): void {
  localStorage.setItem(STORAGE_KEY, lang);
  current = lang;
  document.documentElement.lang = lang === 'zh' ? 'zh-CN' : 'en';
}

/** Numbers and times as the language writes them. */
export const formatNumber = (n: number) => n.toLocaleString(current === 'zh' ? 'zh-CN' : 'en-GB');
export const formatTime = (at: number | string) =>
  new Date(at).toLocaleString(current === 'zh' ? 'zh-CN' : 'en-GB', { hour12: false });

addStrings({
  'common.signOut': ['Sign out', '退出登录'],
  'common.signOutEverywhere': ['Sign out everywhere', '在所有设备上退出'],
  'common.signOutEverywhereHint': ['Ends every sign-in of yours: other browsers and wall screens too', '结束您的所有登录，包括其他浏览器和大屏'],
  'common.language': ['中文', 'English'],
  'common.save': ['Save', '保存'],
  'common.cancel': ['Cancel', '取消'],
  'common.delete': ['Delete', '删除'],
  'common.edit': ['Edit', '编辑'],
  'common.create': ['Create', '新建'],
  'common.search': ['Search', '搜索'],
  'common.more': ['Load more', '加载更多'],
  'common.close': ['Close', '关闭'],
  'common.loading': ['Loading…', '加载中…'],
  'common.none': ['Nothing here', '暂无数据'],
  'common.all': ['All', '全部'],
  'common.error': ['Error', '错误'],
  'common.saved': ['Saved', '已保存'],
  'common.online': ['Online', '在线'],
  'common.offline': ['Offline', '离线'],
  // A camera's health as the registry records it, wherever a page shows it.
  'health.online': ['Online', '在线'],
  'health.offline': ['Offline', '离线'],
  'health.unknown': ['Not checked yet', '未检测'],
  'common.disconnected': ['Connection lost, reconnecting…', '连接中断，正在重连…'],
  'common.waitingGateway': ['Waiting for the gateway… trying again in {seconds} s', '正在等待网关…{seconds} 秒后重试'],
  'nav.console': ['Wall console', '上墙控制'],
  'nav.regulator': ['Vehicles', '车辆监管'],
  'nav.admin': ['Administration', '系统管理'],
  'nav.wall': ['Wall screens', '大屏'],
});
