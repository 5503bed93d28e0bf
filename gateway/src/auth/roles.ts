import type { Role } from '../store/types.js';

/**
 * What each role may do. Routes and control messages name a permission, never a role,
 * so this table is the whole policy. Department scope is checked separately, on every access.
 * The audit log is the auditor's alone: admins change things, auditors watch them.
 */
export const PERMISSIONS = {
  'sources:read': ['admin', 'operator', 'regulator'],
  'sources:write': ['admin'],
  'sources:export': ['admin'],
  'departments:read': ['admin', 'operator', 'regulator'],
  'departments:write': ['admin'],
  'users:read': ['admin'],
  'users:write': ['admin'],
  'audit:read': ['auditor'],
  'streams:view': ['admin', 'operator', 'regulator'],
  'streams:admin': ['admin'],
} as const satisfies Record<string, readonly Role[]>;

export type Permission = keyof typeof PERMISSIONS;

export function allows(roles: readonly Role[], permission: Permission): boolean {
  return roles.some((r) => (PERMISSIONS[permission] as readonly Role[]).includes(r));
}
