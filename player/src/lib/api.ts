/**
 * The REST client and the signed-in session.
 *
 * The login token lives in sessionStorage: it is not sent with every request as a cookie would be (so
 * no cross-site request can use it), it is gone when the tab closes, and it survives the reload of a
 * wall screen. The pages load no third-party script and forbid inline scripts (CSP), which is what
 * keeps it from being read. It is dropped as soon as the gateway refuses it.
 */
export interface SessionUser {
  id: string;
  username: string;
  displayName: string;
  roles: string[];
  scopes: string[];
  permissions: string[];
}

export interface Session {
  token: string;
  expiresAt: string;
  user: SessionUser;
}

export interface UiSettings {
  language: 'zh' | 'en';
  map: { tileUrl: string | null; attribution: string; maxZoom: number; centre: [number, number] };
}

/** A refused field: its English message, and the rule and parameters the page words it from. */
export interface FieldIssue {
  field: string;
  message: string;
  rule?: string;
  params?: Record<string, string | number>;
}

/** An error answer of the gateway: its code, message and, for bad input, the fields at fault. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly issues: FieldIssue[] = [],
    readonly body: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

import { learnNodes, onNode } from './nodes.js';

const SESSION_KEY = 'wallgate.session';

export function currentSession(): Session | null {
  try {
    const s = JSON.parse(sessionStorage.getItem(SESSION_KEY) ?? 'null') as Session | null;
    if (!s || Date.parse(s.expiresAt) <= Date.now()) return null;
    return s;
  } catch {
    return null;
  }
}

export function saveSession(s: Session): void {
  sessionStorage.setItem(SESSION_KEY, JSON.stringify(s));
}

export function endSession(): void {
  sessionStorage.removeItem(SESSION_KEY);
}

/** Back to the sign-in page, which returns here afterwards. */
export function toLogin(): never {
  endSession();
  const next = location.pathname + location.search + location.hash;
  location.replace(`/login.html?next=${encodeURIComponent(next)}`);
  throw new Error('signed out');
}

export function can(permission: string): boolean {
  return currentSession()?.user.permissions.includes(permission) ?? false;
}

interface RequestOptions {
  body?: unknown;
  /** A raw body (CSV, NDJSON) with its content type, instead of JSON. */
  raw?: { text: string; type: string };
  headers?: Record<string, string>;
  signal?: AbortSignal;
  /** Leave a 401 to the caller (the sign-in page) instead of going to sign in again. */
  anonymous?: boolean;
}

/** Sends a request with the session's bearer token; a 401 goes to sign in (unless `anonymous`). */
async function send(method: string, path: string, opts: RequestOptions, accept: string): Promise<Response> {
  const headers: Record<string, string> = { accept, ...opts.headers };
  const session = currentSession();
  if (session && !opts.anonymous) headers.authorization = `Bearer ${session.token}`;
  let body: string | undefined;
  if (opts.raw) {
    body = opts.raw.text;
    headers['content-type'] = opts.raw.type;
  } else if (opts.body !== undefined) {
    body = JSON.stringify(opts.body);
    headers['content-type'] = 'application/json';
  }
  let res: Response;
  try {
    res = await fetch(onNode(path), { method, headers, body, signal: opts.signal ?? null });
  } catch (e) {
    if ((e as Error).name === 'AbortError') throw e;
    throw new ApiError(0, 'NETWORK', 'the gateway cannot be reached');
  }
  if (res.status === 401 && !opts.anonymous) toLogin();
  return res;
}

function refusal(res: Response, json: Record<string, unknown>): ApiError {
  return new ApiError(res.status, String(json.code ?? `HTTP_${res.status}`), String(json.message ?? res.statusText), (json.issues as FieldIssue[]) ?? [], json);
}

export async function api<T = unknown>(method: string, path: string, opts: RequestOptions = {}): Promise<T> {
  const res = await send(method, path, opts, 'application/json');
  if (res.status === 204) return undefined as T;
  const text = await res.text();
  let json: Record<string, unknown> = {};
  try {
    json = text ? (JSON.parse(text) as Record<string, unknown>) : {};
  } catch {
    if (res.ok) return text as T;
  }
  if (!res.ok) throw refusal(res, json);
  return json as T;
}

/**
 * A binary answer (a snapshot), fetched with the bearer header an <img src> cannot carry: the body as
 * a Blob, null for 204 No Content, an ApiError with the gateway's code for a refusal.
 */
export async function apiBlob(path: string, opts: Pick<RequestOptions, 'signal'> = {}): Promise<Blob | null> {
  const res = await send('GET', path, opts, '*/*');
  if (res.status === 204) return null;
  if (res.ok) return res.blob();
  let json: Record<string, unknown> = {};
  try {
    const parsed = JSON.parse(await res.text()) as unknown;
    if (parsed && typeof parsed === 'object') json = parsed as Record<string, unknown>;
  } catch {
    // Not the gateway's JSON (a proxy's page): the status says enough.
  }
  throw refusal(res, json);
}

let settings: Promise<UiSettings> | null = null;
export function uiSettings(): Promise<UiSettings> {
  settings ??= api<UiSettings>('GET', '/api/ui', { anonymous: true });
  // A failure is not kept: the next call asks again (a screen that started before the gateway).
  settings.catch(() => (settings = null));
  return settings;
}

const RENEW_EVERY_MS = 30 * 60_000;
const SIGNED_OUT_KEY = 'wallgate.signedOut';

/**
 * Renews the login token every half hour while a page is open, so an unattended wall screen stays
 * signed in; a changed password, role or scope still ends it (the gateway refuses the renewal).
 */
export function keepSessionFresh(): void {
  const renew = async () => {
    const s = currentSession();
    if (!s) return;
    try {
      const fresh = await api<{ token: string; expiresAt: string }>('POST', '/api/auth/renew');
      saveSession({ ...s, token: fresh.token, expiresAt: fresh.expiresAt });
    } catch {
      // The gateway is away; the next round tries again, and a refusal has already gone to sign in.
    }
  };
  setInterval(() => void renew(), RENEW_EVERY_MS);
  shareSession();
  // Signing out in one window signs out every window of this browser (pop-outs carry their own copy,
  // maybe of another sign-in: each window ends its own on the gateway).
  window.addEventListener('storage', (e) => {
    if (e.key !== SIGNED_OUT_KEY) return;
    const s = currentSession();
    endSession();
    if (s) void endOnGateway(s.token, false);
    location.replace('/login.html');
  });
}

/** How long signing out waits for the gateway before leaving anyway (the token is gone from the page either way). */
const SIGN_OUT_WAIT_MS = 3_000;

/**
 * Ends the session on the gateway, so the token stops working there too and not only in this browser.
 * `keepalive` lets the request finish while the page navigates away; a gateway that cannot be reached
 * changes nothing for the page, which drops the token anyway.
 */
function endOnGateway(token: string, everywhere: boolean): Promise<void> {
  const request = fetch(onNode(everywhere ? '/api/auth/logout-all' : '/api/auth/logout'), {
    method: 'POST',
    headers: { authorization: `Bearer ${token}` },
    keepalive: true,
  }).then(
    () => undefined,
    () => undefined,
  );
  return Promise.race([request, new Promise<void>((resolve) => setTimeout(resolve, SIGN_OUT_WAIT_MS))]);
}

/** Signs out of this browser's windows, and with `everywhere` of every other browser and wall screen as well. */
export async function signOut(everywhere = false): Promise<void> {
  const s = currentSession();
  endSession();
  localStorage.setItem(SIGNED_OUT_KEY, String(Date.now()));
  if (s) await endOnGateway(s.token, everywhere);
  location.href = '/login.html';
}

const SHARE_CHANNEL = 'wallgate.session';

/**
 * Hands this tab's session to a new tab of the same browser that asks for it, so opening a page in
 * another tab does not mean signing in again. Only pages of this gateway can listen (the channel is
 * same-origin), and the session still ends when the browser's last tab closes.
 */
function shareSession(): void {
  const channel = new BroadcastChannel(SHARE_CHANNEL);
  channel.onmessage = (e: MessageEvent<{ type?: string }>) => {
    const s = currentSession();
    if (e.data?.type === 'ask' && s) channel.postMessage({ type: 'session', session: s });
  };
}

/** Asks the browser's other tabs for their session; null when none answers within a moment. */
export function borrowSession(waitMs = 300): Promise<Session | null> {
  return new Promise((resolve) => {
    const channel = new BroadcastChannel(SHARE_CHANNEL);
    const done = (s: Session | null) => {
      clearTimeout(timer);
      channel.close();
      resolve(s);
    };
    const timer = setTimeout(() => done(null), waitMs);
    channel.onmessage = (e: MessageEvent<{ type?: string; session?: Session }>) => {
      const s = e.data?.session;
      if (e.data?.type === 'session' && s && typeof s.token === 'string' && Date.parse(s.expiresAt) > Date.now()) {
        saveSession(s);
        done(s);
      }
    };
    channel.postMessage({ type: 'ask' });
  });
}

/** The session of a page that needs one, checked with the gateway (a disabled user or stale token goes to sign in). */
export async function requireSession(): Promise<Session> {
  const s = currentSession() ?? (await borrowSession());
  if (!s) toLogin();
  const me = await api<SessionUser>('GET', '/api/auth/me');
  const fresh = { ...s, user: me };
  saveSession(fresh);
  await refreshNodes();
  return fresh;
}

/**
 * Asks the node in use for the cluster's nodes (cluster mode), so the page can go on elsewhere when
 * its node fails; a gateway that does not answer leaves the list as it was.
 */
export async function refreshNodes(): Promise<void> {
  try {
    learnNodes(await api<{ mode: string; nodes: Array<{ url: string }> }>('GET', '/api/cluster/nodes'));
  } catch {
    // An older gateway, or one going away: the next connection asks again.
  }
}
