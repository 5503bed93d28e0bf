/** What every signed-in page starts with: settings, language, the session and the header. */
import { ApiError, can, currentSession, keepSessionFresh, requireSession, signOut, uiSettings, type Session, type UiSettings } from './api.js';
import { h } from './dom.js';
import { chooseLanguage, initLanguage, language, t } from './i18n.js';

/** The other language's name, as a button that switches the page to it. */
export function languageToggle(): HTMLButtonElement {
  return h(
    'button',
    {
      type: 'button',
      class: 'link',
      onclick: () => {
        chooseLanguage(language() === 'zh' ? 'en' : 'zh');
        location.reload();
      },
    },
    t('common.language'),
  );
}

export interface PageContext {
  session: Session;
  settings: UiSettings;
  main: HTMLElement;
}

const PAGES = [
  { href: '/console.html', label: 'nav.console', permission: 'walls:read' },
  { href: '/regulator.html', label: 'nav.regulator', permission: 'vehicles:read' },
  { href: '/admin.html', label: 'nav.admin', permission: null },
] as const;

/** Where a user goes after signing in, when no page was asked for. */
export function homeFor(permissions: string[]): string {
  if (permissions.includes('walls:drive')) return '/console.html';
  if (permissions.includes('vehicles:read')) return '/regulator.html';
  return '/admin.html';
}

/**
 * Settings and the session, waiting for the gateway as long as it takes: wall PCs that boot before
 * the gateway after a power cut must come up by themselves.
 */
async function settingsAndSession(): Promise<{ settings: UiSettings; session: Session }> {
  for (let attempt = 0; ; attempt++) {
    try {
      const settings = await uiSettings();
      initLanguage(settings.language);
      return { settings, session: await requireSession() };
    } catch (e) {
      if (e instanceof ApiError && e.status > 0 && e.status < 500) throw e;
      const seconds = Math.min(30, 2 ** attempt);
      document.body.replaceChildren(h('p', { class: 'waiting', role: 'status' }, t('common.waitingGateway', { seconds })));
      await new Promise((r) => setTimeout(r, seconds * 1000));
      document.body.replaceChildren();
    }
  }
}

export async function startPage(opts: { title: string; page: string; chrome?: boolean }): Promise<PageContext> {
  const { settings, session } = await settingsAndSession();
  keepSessionFresh();
  document.title = `${t(opts.title)} · wallgate`;
  document.body.className = `page-${opts.page}`;
  const main = h('main', { id: 'main' });
  if (opts.chrome === false) {
    document.body.append(main);
    return { session, settings, main };
  }
  const nav = PAGES.filter((p) => (p.permission ? can(p.permission) : true)).map((p) =>
    h('a', { href: p.href, class: location.pathname === p.href ? 'active' : '' }, t(p.label)),
  );
  const header = h(
    'header',
    { class: 'topbar' },
    h('span', { class: 'brand' }, 'wallgate'),
    h('nav', null, nav),
    h('span', { class: 'spacer' }),
    h(
      'details',
      { class: 'user-menu' },
      h('summary', { class: 'who', title: session.user.roles.join(', ') }, session.user.displayName || session.user.username),
      h(
        'div',
        { class: 'menu' },
        h('button', { type: 'button', class: 'link', dataset: { action: 'sign-out-everywhere' }, title: t('common.signOutEverywhereHint'), onclick: () => void signOut(true) }, t('common.signOutEverywhere')),
      ),
    ),
    languageToggle(),
    h('button', { type: 'button', class: 'link', dataset: { action: 'sign-out' }, onclick: () => void signOut() }, t('common.signOut')),
  );
  document.body.append(header, main);
  return { session, settings, main };
}

/** A message in place of the page, for a page the user may not use. */
export function refuse(main: HTMLElement, message: string): void {
  main.replaceChildren(h('p', { class: 'refused' }, message));
}

/**
 * `teardown` when the page is really left. A page the browser keeps in its back/forward cache is
 * left whole; coming back to it reloads it, since its connection and the state it followed were
 * frozen meanwhile and a page that looks live but is not is worse than a reload.
 */
export function onPageLeave(teardown: () => void): void {
  window.addEventListener('pagehide', (e) => {
    if (!e.persisted) teardown();
  });
  window.addEventListener('pageshow', (e) => {
    if (e.persisted) location.reload();
  });
}

/**
 * The one-camera page in its own window, one window per camera whichever page opened it: a second
 * click brings that window back instead of playing the camera twice.
 */
export function openPopout(cameraId: string, profile: 'main' | 'sub' = 'main'): void {
  const url = `/popout.html?camera=${encodeURIComponent(cameraId)}&profile=${profile}`;
  // Not "noopener": the new window must inherit this tab's session to play without signing in again.
  window.open(url, `popout-${cameraId}`, 'popup,width=1280,height=760');
}

export { currentSession };
