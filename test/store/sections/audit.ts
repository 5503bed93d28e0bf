/** The audit log: newest first, paged by seq, filtered by actor, action and department scope. */
import type { Test } from 'tap';
import { subtreeEnd } from '../../../gateway/src/store/types.js';
import type { OpenStore } from '../contract.js';
import { auditEntry, uid } from '../fixtures.js';

export default function audit(t: Test, open: OpenStore) {
  t.test('append and list', async (t) => {
    const store = await open(t);
    const actor = uid('actor');
    const scope = `/${uid('d')}/`;
    const other = `/${uid('d')}/`;
    await store.audit.append(auditEntry({ actor, action: 'a.one', scopePath: scope, detail: { n: 1, nested: { ok: true } } }));
    await store.audit.append(auditEntry({ actor, action: 'a.two', scopePath: `${scope}child/`, outcome: 'denied' }));
    await store.audit.append(auditEntry({ actor, action: 'a.one', scopePath: other }));
    await store.audit.append(auditEntry({ actor, action: 'a.sys', scopePath: null, outcome: 'failed' }));
    const everything = [[`/`, subtreeEnd('/')]] as [string, string][];
    const all = await store.audit.list({ actor, limit: 10, ranges: everything, includeSystem: true });
    t.same(all.map((e) => e.action), ['a.sys', 'a.one', 'a.two', 'a.one'], 'newest first');
    t.ok(all.every((e, i) => i === 0 || e.seq < all[i - 1]!.seq));
    t.match(all[3], { actor, actorIp: '127.0.0.1', target: 'x', outcome: 'ok', detail: { n: 1, nested: { ok: true } }, scopePath: scope, at: 1_000 });
    const scoped = await store.audit.list({ actor, limit: 10, ranges: [[scope, subtreeEnd(scope)]], includeSystem: false });
    t.same(scoped.map((e) => e.action), ['a.two', 'a.one'], 'only the subtree');
    const withSystem = await store.audit.list({ actor, limit: 10, ranges: [[scope, subtreeEnd(scope)]], includeSystem: true });
    t.same(withSystem.map((e) => e.action), ['a.sys', 'a.two', 'a.one']);
    t.same(await store.audit.list({ actor, limit: 10, ranges: [], includeSystem: false }), [], 'no scope: nothing');
    t.same((await store.audit.list({ actor, action: 'a.one', limit: 10, ranges: everything, includeSystem: true })).map((e) => e.scopePath), [other, scope]);
    const page = await store.audit.list({ actor, limit: 2, ranges: everything, includeSystem: true });
    const rest = await store.audit.list({ actor, limit: 10, before: page[1]!.seq, ranges: everything, includeSystem: true });
    t.same([...page, ...rest].map((e) => e.seq), all.map((e) => e.seq), 'pages by seq');
  });
}
