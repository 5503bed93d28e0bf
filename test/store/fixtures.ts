/** Rows for the store contract sections: unique ids per run, so sections can share one database. */
import { randomBytes } from 'node:crypto';
import { subtreeEnd, type AuditEntry, type DepartmentRecord, type PathRange, type SealedCredential, type SourceWrite, type Store } from '../../gateway/src/store/types.js';

export const uid = (prefix = 'c') => `${prefix}${randomBytes(5).toString('hex')}`;

/** A department under `parent` (a new top-level one without). */
export async function department(store: Store, parent?: DepartmentRecord, name = 'Department'): Promise<DepartmentRecord> {
  const id = uid('d');
  return store.departments.create(
    { id, name, parentId: parent?.id ?? null, level: parent ? 'city' : 'province', path: `${parent?.path ?? '/'}${id}/` },
    1_000,
  );
}

export function sourceWrite(dep: DepartmentRecord, fields: Partial<SourceWrite> = {}): SourceWrite {
  return {
    id: uid('s'),
    name: 'Camera',
    departmentId: dep.id,
    deptPath: dep.path,
    level: dep.level,
    address: '',
    url: 'rtsp://10.0.0.1/stream',
    subUrl: null,
    protocol: 'rtsp',
    codec: 'h264',
    lat: null,
    lon: null,
    tags: [],
    enabled: true,
    credential: null,
    ...fields,
  };
}

export function credential(username: string, password: string | null): SealedCredential {
  return {
    fingerprint: Buffer.from(`${username}:${password ?? ''}`.padEnd(32, '.')),
    username,
    sealedPassword: password === null ? null : Buffer.from(`sealed:${password}`),
  };
}

export function auditEntry(fields: Partial<Omit<AuditEntry, 'seq'>> = {}): Omit<AuditEntry, 'seq'> {
  return { at: 1_000, actor: 'alice', actorIp: '127.0.0.1', action: 'test.action', target: 'x', outcome: 'ok', detail: {}, scopePath: null, ...fields };
}

/** `n` random decimal digits: ids of their own for GB/T 28181 devices and JT/T 808 SIMs, which are digits. */
export const digits = (n: number) => Array.from(randomBytes(n), (b) => String(b % 10)).join('');

/** The path range of a department's subtree. */
export const subtree = (dep: { path: string }): PathRange => [dep.path, subtreeEnd(dep.path)];

/** A top-level department of this subtest's own, with east and west below it. */
export async function departmentTree(store: Store): Promise<{ top: DepartmentRecord; east: DepartmentRecord; west: DepartmentRecord }> {
  const top = await department(store, undefined, 'Top');
  return { top, east: await department(store, top, 'East'), west: await department(store, top, 'West') };
}

/** Moves `dep` below a new department under `top`; returns it as moved (every path filed under it must follow). */
export async function moveBelowNew(store: Store, top: DepartmentRecord, dep: DepartmentRecord): Promise<DepartmentRecord> {
  const parent = await department(store, top, 'North');
  return store.departments.update(dep.id, { parentId: parent.id, path: `${parent.path}${dep.id}/` }, 2_000);
}

/** Audit entries by an actor of this subtest's own, and what it recorded ("action target", oldest first). */
export function auditTrail(store: Store, scopePath: string | null = null) {
  const actor = uid('actor');
  return {
    entry: (action: string, target: string) => auditEntry({ actor, action, target, scopePath }),
    actions: async () => (await store.audit.list({ actor, limit: 1_000, ranges: [['/', subtreeEnd('/')]], includeSystem: true })).map((e) => `${e.action} ${e.target}`).reverse(),
  };
}
