/** Users and signed-out sessions. */
import type { Test } from 'tap';
import { StoreConflict, type UserRecord } from '../../../gateway/src/store/types.js';
import type { OpenStore } from '../contract.js';
import { uid } from '../fixtures.js';

const user = (fields: Partial<UserRecord> = {}): UserRecord => ({
  id: uid('u'),
  username: uid('name'),
  displayName: 'Alice',
  passwordHash: 'hash',
  roles: ['operator'],
  scopes: ['d1'],
  disabled: false,
  tokenVersion: 1,
  tokensRevokedAt: 0,
  createdAt: 1,
  updatedAt: 1,
  ...fields,
});

export default function users(t: Test, open: OpenStore) {
  t.test('create, get, by name, conflict on a taken name, update, count, list by name', async (t) => {
    const store = await open(t);
    const before = await store.users.count();
    const u = user({ username: `b-${uid()}` });
    t.same(await store.users.create(u), u);
    t.same(await store.users.get(u.id), u);
    t.same(await store.users.byUsername(u.username), u);
    t.equal(await store.users.get(uid()), null);
    t.equal(await store.users.byUsername(uid()), null);
    await t.rejects(store.users.create(user({ username: u.username })), StoreConflict);
    const a = user({ username: `a-${u.username}` });
    await store.users.create(a);
    t.equal(await store.users.count(), before + 2);
    const names = (await store.users.list()).map((x) => x.username).filter((n) => n === u.username || n === a.username);
    t.same(names, [a.username, u.username], 'ordered by user name');
    const changed = { ...u, displayName: 'Bob', roles: ['admin' as const], scopes: [], disabled: true, tokenVersion: 2, tokensRevokedAt: 99, updatedAt: 5 };
    await store.users.update(changed);
    t.same(await store.users.get(u.id), { ...changed, tokensRevokedAt: 0 }, 'update writes everything but tokensRevokedAt');
  });

  t.test('revokeTokens never moves the time back', async (t) => {
    const store = await open(t);
    const u = user();
    await store.users.create(u);
    t.equal(await store.users.revokeTokens(u.id, 50), true);
    t.equal(await store.users.revokeTokens(u.id, 20), true);
    t.equal((await store.users.get(u.id))!.tokensRevokedAt, 50);
    t.equal(await store.users.revokeTokens(uid(), 50), false, 'an unknown user');
  });

  t.test('sessions: revoked until pruned past expiry; the later expiry is kept', async (t) => {
    const store = await open(t);
    const [s1, s2] = [uid('sess'), uid('sess')];
    await store.sessions.revoke({ sessionId: s1, userId: 'u', expiresAt: 100 }, 10);
    await store.sessions.revoke({ sessionId: s1, userId: 'u', expiresAt: 50 }, 10);
    t.equal(await store.sessions.isRevoked(s1), true);
    t.equal(await store.sessions.isRevoked(s2), false);
    await store.sessions.revoke({ sessionId: s2, userId: 'u', expiresAt: 1_000 }, 60);
    t.equal(await store.sessions.isRevoked(s1), true, 'kept its later expiry (100), so a prune at 60 left it');
    await store.sessions.revoke({ sessionId: s2, userId: 'u', expiresAt: 1_000 }, 100);
    t.equal(await store.sessions.isRevoked(s1), false, 'pruned at its expiry');
    t.ok((await store.sessions.count()) >= 1);
  });
}
