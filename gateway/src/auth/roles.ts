import type { Role } from '../store/types.js';

/**
 * What each role may do. Routes and control messages name a permission, never a role,
 * so this table is the whole policy. Department scope is checked separately, on every access.
 * The audit log is the auditor's alone: admins change things, auditors watch them.
 */
export const PERMISSIONS = {
  'sources:read': ['admin', 'supervisor', 'operator', 'regulator'],
  'sources:write': ['admin'],
  'sources:export': ['admin'],
  'departments:read': ['admin', 'supervisor', 'operator', 'regulator'],
  'departments:write': ['admin'],
  'users:read': ['admin'],
  'users:write': ['admin'],
  'audit:read': ['auditor'],
  /** The cluster view: nodes, their load and the cameras each pulls. */
  'cluster:read': ['admin', 'auditor'],
  'streams:view': ['admin', 'supervisor', 'operator', 'regulator'],
  'streams:admin': ['admin'],
  'walls:read': ['admin', 'supervisor', 'operator', 'regulator'],
  /** Assign tiles, change layouts, run tours, save and recall presets, lock tiles, activate and revert plans. */
  'walls:drive': ['admin', 'supervisor', 'operator'],
  /** Create and delete walls; save and delete emergency plans. */
  'walls:manage': ['admin', 'supervisor'],
  'walls:break-lock': ['admin', 'supervisor'],
  'vehicles:read': ['admin', 'supervisor', 'operator', 'regulator'],
  'vehicles:write': ['admin'],
  /** Report positions and alarms (a vehicle platform's feed). */
  'vehicles:feed': ['admin', 'feed'],
  /** Geofences and alarm-to-wall linkage rules. */
  'vehicles:rules': ['admin', 'supervisor'],
  /** Acknowledge and close alarms. */
  'alarms:handle': ['admin', 'supervisor', 'operator', 'regulator'],
  /** Pan, tilt, zoom and presets of cameras that support it (GB/T 28181 channels); taking over another's control is walls:break-lock. */
  'ptz:control': ['admin', 'supervisor', 'operator'],
} as const satisfies Record<string, readonly Role[]>;

export type Permission = keyof typeof PERMISSIONS;

export function allows(roles: readonly Role[], permission: Permission): boolean {
  return roles.some((r) => (PERMISSIONS[permission] as readonly Role[]).includes(r));
}
