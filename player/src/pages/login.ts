import { api, borrowSession, currentSession, saveSession, uiSettings, type Session, type SessionUser } from '../lib/api.js';
import { h } from '../lib/dom.js';
import { errorText } from '../lib/errors.js';
import { addStrings, initLanguage, t } from '../lib/i18n.js';
import { homeFor, languageToggle } from '../lib/shell.js';
import '../styles/app.css';

addStrings({
  'login.title': ['Sign in', '登录'],
  'login.product': ['Video wall gateway', '视频上墙网关'],
  'login.username': ['User name', '用户名'],
  'login.password': ['Password', '密码'],
  'login.submit': ['Sign in', '登录'],
  'login.failed': ['Sign-in failed: {message}', '登录失败：{message}'],
});

const SIGN_IN_PATHS = new Set(['/', '/index.html', '/login.html']);

/**
 * Only a page of this gateway, and never the sign-in page itself (it would send a signed-in user
 * round in a loop): a crafted link must not send a fresh session elsewhere.
 */
function nextPage(permissions: string[]): string {
  const next = new URLSearchParams(location.search).get('next');
  if (next && next.startsWith('/') && !next.startsWith('//') && !next.includes('\\')) {
    const url = new URL(next, location.origin);
    if (url.origin === location.origin && !SIGN_IN_PATHS.has(decodeURIComponent(url.pathname))) return url.pathname + url.search + url.hash;
  }
  return homeFor(permissions);
}

async function main() {
  const settings = await uiSettings().catch(() => ({ language: 'zh' as const }));
  initLanguage(settings.language);
  const existing = currentSession() ?? (await borrowSession());
  if (existing) {
    location.replace(nextPage(existing.user.permissions));
    return;
  }
  document.title = `${t('login.title')} · wallgate`;
  document.body.className = 'page-login';
  const error = h('p', { class: 'form-error', role: 'alert' });
  const username = h('input', { name: 'username', autocomplete: 'username', required: true, autofocus: true });
  const password = h('input', { name: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const submit = h('button', { type: 'submit', class: 'primary' }, t('login.submit'));
  const form = h(
    'form',
    { class: 'login-box' },
    h('h1', null, 'wallgate'),
    h('p', { class: 'muted' }, t('login.product')),
    h('label', null, t('login.username'), username),
    h('label', null, t('login.password'), password),
    error,
    submit,
    languageToggle(),
  );
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    submit.disabled = true;
    error.textContent = '';
    try {
      const login = await api<{ token: string; expiresAt: string }>('POST', '/api/auth/login', {
        body: { username: username.value.trim(), password: password.value },
        anonymous: true,
      });
      // The page keeps no password: only the token, and the permissions that shape the pages.
      password.value = '';
      const me = await api<SessionUser>('GET', '/api/auth/me', { headers: { authorization: `Bearer ${login.token}` }, anonymous: true });
      const session: Session = { token: login.token, expiresAt: login.expiresAt, user: me };
      saveSession(session);
      location.replace(nextPage(me.permissions));
    } catch (err) {
      error.textContent = t('login.failed', { message: errorText(err) });
      submit.disabled = false;
    }
  });
  document.body.append(h('main', { class: 'login' }, form));
}

void main();
