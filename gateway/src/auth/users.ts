import { randomUUID } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import { GatewayError, ValidationError, notFound, type FieldIssue, reasoned, issue } from '../errors.js';
import { ROLES, StoreConflict, type Role, type Store, type UserRecord } from '../store/types.js';
import { DUMMY_HASH, hashPassword, randomPassword, verifyPassword } from './passwords.js';
import { TokenService } from './tokens.js';

/** The signed-in user behind a request or a socket. */
export interface Principal {
  id: string;
  username: string;
  displayName: string;
  roles: Role[];
  scopes: string[];
  ip: string;
  /** The sign-in behind the bearer token (absent for actors that hold none, such as the system). */
  session?: { id: string };
}

/** Why a token no longer signs in; the control WebSocket closes with it as its reason. */
export type TokenRefusal = 'invalid or expired token' | 'account disabled or removed' | 'account changed: sign in again' | 'signed out everywhere' | 'signed out';

/** What auth needs to know of departments; app.ts wires the registry's tree into it. */
export interface DepartmentDirectory {
  exists(id: string): boolean;
  /** Whether department `id` lies inside the subtrees of `scopes`. */
  within(id: string, scopes: string[]): boolean;
  /** The path of the nearest department containing all of `ids`, for scoping audit entries. */
  commonPath(ids: string[]): string | null;
}

export interface UserView {
  id: string;
  username: string;
  displayName: string;
  roles: Role[];
  scopes: string[];
  disabled: boolean;
  createdAt: string;
  updatedAt: string;
}

export interface UserInput {
  username?: unknown;
  displayName?: unknown;
  password?: unknown;
  roles?: unknown;
  scopes?: unknown;
  disabled?: unknown;
}

const USERNAME = /^[A-Za-z0-9][A-Za-z0-9_.@-]{1,63}$/;

interface LoginAttempts {
  failures: number;
  lockedUntil: number;
}

export class UsersService {
  /**
   * Failed logins per user name and address: one address cannot lock a user out for everyone, and
   * the table is bounded however many names are tried.
   */
  private readonly attempts = new LRUCache<string, LoginAttempts>({ max: 10_000 });

  constructor(
    private readonly store: Store,
    private readonly tokens: TokenService,
    private readonly departments: DepartmentDirectory,
    private readonly policy: { passwordMinLength: number; loginMaxFailures: number; loginLockoutSec: number },
    private readonly clock: () => number = Date.now,
  ) {}

  view(u: UserRecord): UserView {
    return {
      id: u.id,
      username: u.username,
      displayName: u.displayName,
      roles: u.roles,
      scopes: u.scopes,
      disabled: u.disabled,
      createdAt: new Date(u.createdAt).toISOString(),
      updatedAt: new Date(u.updatedAt).toISOString(),
    };
  }

  /** Audits an event about `subject` (a user); it is visible to auditors over that user's departments. */
  private audit(
    actor: { username: string; ip: string },
    action: string,
    subject: { username: string; scopes: string[] } | null,
    outcome: 'ok' | 'denied' | 'failed',
    detail: Record<string, unknown> = {},
  ) {
    const target = subject?.username ?? String(detail.username ?? '-');
    const scopePath = subject ? this.departments.commonPath(subject.scopes) : null;
    return this.store.audit.append({ at: this.clock(), actor: actor.username, actorIp: actor.ip, action, target, outcome, detail, scopePath });
  }

  /** On an empty store: an admin over the whole tree with a random password, which the caller prints once. */
  async bootstrap(username: string, rootDepartmentId: string): Promise<{ username: string; password: string } | null> {
    if ((await this.store.users.count()) > 0) return null;
    const password = randomPassword();
    const now = this.clock();
    await this.store.users.create({
      id: randomUUID(),
      username,
      displayName: 'Administrator',
      passwordHash: await hashPassword(password),
      roles: ['admin'],
      scopes: [rootDepartmentId],
      disabled: false,
      tokenVersion: 1,
      tokensRevokedAt: 0,
      createdAt: now,
      updatedAt: now,
    });
    await this.audit({ username: 'system', ip: '-' }, 'user.bootstrap', null, 'ok', { username });
    return { username, password };
  }

  async login(username: string, password: string, ip: string) {
    const now = this.clock();
    const key = `${username}\u0000${ip}`;
    const attempt = this.attempts.get(key);
    if (attempt && attempt.lockedUntil > now) {
      const user = await this.store.users.byUsername(username);
      await this.audit({ username, ip }, 'auth.login', user, 'denied', { username, reason: 'locked' });
      const retryAfterSec = Math.ceil((attempt.lockedUntil - now) / 1000);
      throw reasoned('GW_ERR_LOGIN_LOCKED', 'wait', { retryAfterSec }, `too many failed logins; try again in ${retryAfterSec} s`);
    }
    const user = await this.store.users.byUsername(username);
    const ok = await verifyPassword(password, user?.passwordHash ?? DUMMY_HASH);
    if (!user || !ok || user.disabled) {
      const a = attempt ?? { failures: 0, lockedUntil: 0 };
      a.failures++;
      if (a.failures >= this.policy.loginMaxFailures) {
        a.failures = 0;
        a.lockedUntil = now + this.policy.loginLockoutSec * 1000;
      }
      this.attempts.set(key, a);
      await this.audit({ username, ip }, 'auth.login', user, 'failed', { username, reason: !user ? 'unknown user' : user.disabled && ok ? 'disabled' : 'bad password' });
      throw new GatewayError('GW_ERR_LOGIN_FAILED', 'user name or password is wrong');
    }
    this.attempts.delete(key);
    await this.audit({ username, ip }, 'auth.login', user, 'ok');
    return { ...this.tokens.issue({ sub: user.id, tv: user.tokenVersion, sid: randomUUID() }), user: this.view(user) };
  }

  /**
   * A fresh token for a signed-in user, so an unattended wall screen stays signed in past one token's
   * lifetime. It carries the same token version: a new password, role or scope still ends it. It also
   * stays in the same session, so signing out ends the renewed token and the one it replaced alike.
   */
  async renew(actor: Principal): Promise<{ token: string; expiresAt: string }> {
    const user = await this.store.users.get(actor.id);
    if (!user || user.disabled) throw new GatewayError('GW_ERR_UNAUTHENTICATED', 'sign in again');
    return this.tokens.issue({ sub: user.id, tv: user.tokenVersion, sid: actor.session?.id ?? randomUUID() });
  }

  /** The principal a bearer token stands for, or null; see check. */
  async authenticate(token: string, ip: string): Promise<Principal | null> {
    const verdict = await this.check(token, ip);
    return 'refused' in verdict ? null : verdict;
  }

  /**
   * The principal a bearer token stands for, read fresh so a disabled user, a changed role or a sign-out
   * takes effect at once; otherwise why the token is refused.
   */
  async check(token: string, ip: string): Promise<Principal | { refused: TokenRefusal }> {
    const claims = this.tokens.verify(token);
    if (!claims) return { refused: 'invalid or expired token' };
    const user = await this.store.users.get(claims.sub);
    if (!user || user.disabled) return { refused: 'account disabled or removed' };
    if (user.tokenVersion !== claims.tv) return { refused: 'account changed: sign in again' };
    if (claims.issuedAt <= user.tokensRevokedAt) return { refused: 'signed out everywhere' };
    if (await this.store.sessions.isRevoked(claims.sid)) return { refused: 'signed out' };
    return { id: user.id, username: user.username, displayName: user.displayName, roles: user.roles, scopes: user.scopes, ip, session: { id: claims.sid } };
  }

  /**
   * Ends the actor's session: its tokens (this one and any renewal of it, in other tabs too) are refused
   * until the latest of them would have expired, which is no later than a token's lifetime from now.
   */
  async logout(actor: Principal): Promise<void> {
    const now = this.clock();
    if (!actor.session) throw new GatewayError('GW_ERR_UNAUTHENTICATED', 'sign in first: a valid bearer token is required');
    await this.store.sessions.revoke({ sessionId: actor.session.id, userId: actor.id, expiresAt: now + this.tokens.ttlSec * 1000 }, now);
    await this.audit(actor, 'auth.logout', await this.store.users.get(actor.id), 'ok');
  }

  /** "Sign out everywhere": every token the user holds now, in every browser and on every wall screen, is refused. */
  async logoutEverywhere(actor: Principal): Promise<void> {
    const user = await this.store.users.get(actor.id);
    if (!user) throw notFound('user');
    await this.store.users.revokeTokens(user.id, this.clock());
    await this.audit(actor, 'auth.logout-all', user, 'ok');
  }

  /** An admin signs a user they manage out everywhere (a lost laptop, a wall screen in the wrong hands). */
  async revokeSessions(actor: Principal, id: string): Promise<void> {
    const user = await this.store.users.get(id);
    if (!user || !this.manageable(actor, user)) throw notFound(`user "${id}"`);
    await this.store.users.revokeTokens(user.id, this.clock());
    await this.audit(actor, 'user.sessions-revoke', user, 'ok');
  }

  private checkScopes(actor: Principal, value: unknown, issues: FieldIssue[]): string[] {
    if (!Array.isArray(value) || value.length === 0 || value.some((s) => typeof s !== 'string')) {
      issues.push({ field: 'scopes', message: 'expected a non-empty list of department ids' });
      return [];
    }
    for (const id of value as string[]) {
      // A department outside the actor's own scope is reported as unknown: its existence is not theirs to learn.
      if (!this.departments.exists(id) || !this.departments.within(id, actor.scopes)) {
        issues.push(issue('scopes', 'unknownDepartment', { department: id }, `unknown department "${id}"`));
      }
    }
    return [...new Set(value as string[])];
  }

  private checkRoles(value: unknown, issues: FieldIssue[]): Role[] {
    if (!Array.isArray(value) || value.length === 0 || value.some((r) => !(ROLES as readonly unknown[]).includes(r))) {
      issues.push(issue('roles', 'enum', { allowed: ROLES.join(', ') }, `expected a non-empty list of ${ROLES.join(', ')}`));
      return [];
    }
    return [...new Set(value as Role[])];
  }

  private checkPassword(value: unknown, issues: FieldIssue[], field = 'password'): string {
    if (typeof value !== 'string' || value.length < this.policy.passwordMinLength || value.length > 256) {
      issues.push(issue(field, 'lengthRange', { min: this.policy.passwordMinLength, max: 256 }, `expected ${this.policy.passwordMinLength} to 256 characters`));
      return '';
    }
    return value;
  }

  /** Users an admin may manage: those whose every scope lies inside the admin's. */
  private manageable(actor: Principal, u: UserRecord): boolean {
    return u.scopes.every((s) => this.departments.within(s, actor.scopes));
  }

  async list(actor: Principal): Promise<UserRecord[]> {
    return (await this.store.users.list()).filter((u) => this.manageable(actor, u));
  }

  async create(actor: Principal, input: UserInput): Promise<UserRecord> {
    const issues: FieldIssue[] = [];
    if (typeof input.username !== 'string' || !USERNAME.test(input.username)) {
      issues.push(issue('username', 'pattern', {}, 'expected 2-64 letters, digits, "_", ".", "@" or "-"'));
    }
    const displayName = input.displayName === undefined ? input.username : input.displayName;
    if (typeof displayName !== 'string' || displayName.length > 100) issues.push(issue('displayName', 'maxLength', { limit: 100 }, 'expected a string of at most 100 characters'));
    const password = this.checkPassword(input.password, issues);
    const roles = this.checkRoles(input.roles, issues);
    const scopes = this.checkScopes(actor, input.scopes, issues);
    if (issues.length) throw new ValidationError(issues);
    const now = this.clock();
    try {
      const user = await this.store.users.create({
        id: randomUUID(),
        username: input.username as string,
        displayName: displayName as string,
        passwordHash: await hashPassword(password),
        roles,
        scopes,
        disabled: input.disabled === true,
        tokenVersion: 1,
        tokensRevokedAt: 0,
        createdAt: now,
        updatedAt: now,
      });
      await this.audit(actor, 'user.create', user, 'ok', { roles, scopes });
      return user;
    } catch (err) {
      if (err instanceof StoreConflict) throw reasoned('GW_ERR_CONFLICT', 'taken', { id: input.username as string }, `username: "${input.username as string}" is taken`);
      throw err;
    }
  }

  async update(actor: Principal, id: string, input: UserInput): Promise<UserRecord> {
    const user = await this.store.users.get(id);
    if (!user || !this.manageable(actor, user)) throw notFound(`user "${id}"`);
    const issues: FieldIssue[] = [];
    if (input.username !== undefined && input.username !== user.username) issues.push(issue('username', 'unchangeable', {}, 'cannot be changed'));
    const next = { ...user };
    if (input.displayName !== undefined) {
      if (typeof input.displayName !== 'string' || input.displayName.length > 100) issues.push(issue('displayName', 'maxLength', { limit: 100 }, 'expected a string of at most 100 characters'));
      else next.displayName = input.displayName;
    }
    if (input.password !== undefined) next.passwordHash = await hashPassword(this.checkPassword(input.password, issues));
    if (input.roles !== undefined) next.roles = this.checkRoles(input.roles, issues);
    if (input.scopes !== undefined) next.scopes = this.checkScopes(actor, input.scopes, issues);
    if (input.disabled !== undefined) {
      if (typeof input.disabled !== 'boolean') issues.push({ field: 'disabled', message: 'expected true or false' });
      else next.disabled = input.disabled;
    }
    if (id === actor.id && (next.disabled || !next.roles.includes('admin'))) {
      issues.push({ field: input.disabled ? 'disabled' : 'roles', message: 'you cannot disable yourself or drop your own admin role' });
    }
    if (issues.length) throw new ValidationError(issues);
    next.tokenVersion = user.tokenVersion + 1;
    next.updatedAt = this.clock();
    await this.store.users.update(next);
    const changed = Object.keys(input).filter((k) => k !== 'password');
    await this.audit(actor, 'user.update', next, 'ok', {
      changed: input.password !== undefined ? [...changed, 'password'] : changed,
      roles: next.roles,
      scopes: next.scopes,
      disabled: next.disabled,
    });
    return next;
  }

  /** For the console (scripts/reset-password.ts): a new random password for a user, printed once by the caller. */
  async resetPassword(username: string): Promise<string> {
    const user = await this.store.users.byUsername(username);
    if (!user) throw notFound(`user "${username}"`);
    const password = randomPassword();
    await this.store.users.update({ ...user, passwordHash: await hashPassword(password), tokenVersion: user.tokenVersion + 1, updatedAt: this.clock() });
    // Lift this user's lockouts (from every address): the reset is how an operator gets back in.
    for (const key of [...this.attempts.keys()]) if (key.startsWith(`${username}\u0000`)) this.attempts.delete(key);
    await this.audit({ username: 'console', ip: '-' }, 'user.password-reset', user, 'ok');
    return password;
  }

  async changeOwnPassword(actor: Principal, current: string, next: string) {
    const user = await this.store.users.get(actor.id);
    if (!user) throw notFound('user');
    if (!(await verifyPassword(current, user.passwordHash))) {
      await this.audit(actor, 'auth.password', user, 'failed');
      throw new ValidationError([issue('currentPassword', 'wrongPassword', {}, 'is wrong')]);
    }
    const issues: FieldIssue[] = [];
    const password = this.checkPassword(next, issues, 'newPassword');
    if (issues.length) throw new ValidationError(issues);
    await this.store.users.update({ ...user, passwordHash: await hashPassword(password), tokenVersion: user.tokenVersion + 1, updatedAt: this.clock() });
    await this.audit(actor, 'auth.password', user, 'ok');
    return this.tokens.issue({ sub: user.id, tv: user.tokenVersion + 1, sid: actor.session?.id ?? randomUUID() });
  }
}
