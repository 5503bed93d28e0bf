/** Rows for the store contract sections: unique ids per run, so sections can share one database. */
import { randomBytes } from 'node:crypto';
import type { AuditEntry, DepartmentRecord, SealedCredential, SourceWrite, Store } from '../../gateway/src/store/types.js';

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
