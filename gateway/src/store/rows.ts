/**
 * Rows to records for both engines. SQLite and PostgreSQL keep the same snake_case tables, and their
 * rows differ only in booleans (SQLite's 0/1, PostgreSQL's true/false: `flag` reads both); BLOB and
 * BYTEA both arrive as Buffers, and BIGINT as numbers (PgDb parses int8), so one mapper serves both.
 */
import type { ErrorParams } from '../errors.js';
import type {
  AlarmRow,
  AuditEntry,
  DepartmentRecord,
  GbAdmissionRule,
  GbDeviceRecord,
  GbRefusal,
  HealthFailure,
  JtRefusal,
  JtTerminalRecord,
  PositionRow,
  PresetRow,
  RuleRow,
  SourceRecord,
  PathRange,
  SourceWrite,
  TileRows,
  UserRecord,
  VehicleRow,
  WallRow,
} from './types.js';

export type Row = Record<string, unknown>;

/** A boolean column: SQLite gives 0/1, PostgreSQL true/false. */
export const flag = (v: unknown): boolean => v === true || v === 1;

const text = (v: unknown) => (v as string | null | undefined) ?? null;
const num = (v: unknown) => (v as number | null | undefined) ?? null;

/** Tags are stored as "|a|b|" so one tag is found with instr()/strpos() and no join. */
export const packTags = (tags: string[]) => (tags.length ? `|${tags.join('|')}|` : '');
const unpackTags = (packed: string) => (packed ? packed.slice(1, -1).split('|') : []);

/**
 * The source columns a page reads, in the order `toSource` takes them. Credential rows never change
 * (they are keyed by their content), so a source carries a copy of its credential's user name and
 * whether it has a password: a page then reads no second table. `key` is the row's sequence column.
 */
export const sourceColumns = (key: 's.rowid' | 's.seq') => `${key}, s.id, s.name, s.department_id, s.dept_path, s.level, s.address, s.url, s.sub_url,
  s.protocol, s.codec, s.lat, s.lon, s.tags, s.enabled, s.health, s.health_error, s.health_since, s.version,
  s.created_at, s.updated_at, s.username, s.has_password, s.health_code, s.health_params`;

/** A source from the values of `sourceColumns`, in that order (SQLite reads them raw, for speed). */
export function toSource(r: unknown[]): SourceRecord {
  return {
    seq: r[0] as number,
    id: r[1] as string,
    name: r[2] as string,
    departmentId: r[3] as string,
    deptPath: r[4] as string,
    level: r[5] as SourceRecord['level'],
    address: r[6] as string,
    url: r[7] as string,
    subUrl: text(r[8]),
    protocol: r[9] as SourceRecord['protocol'],
    codec: r[10] as SourceRecord['codec'],
    lat: num(r[11]),
    lon: num(r[12]),
    tags: unpackTags(r[13] as string),
    enabled: flag(r[14]),
    health: r[15] as SourceRecord['health'],
    healthError: text(r[16]),
    healthSince: num(r[17]),
    version: r[18] as number,
    createdAt: r[19] as number,
    updatedAt: r[20] as number,
    username: text(r[21]),
    hasPassword: flag(r[22]),
    healthCode: text(r[23]),
    healthParams: r[24] === null || r[24] === undefined ? null : (JSON.parse(r[24] as string) as ErrorParams),
  };
}

/** health_error, health_code and health_params of a failure (all null when healthy). */
export const healthColumns = (failure: HealthFailure | null): [string | null, string | null, string | null] => [
  failure?.message ?? null,
  failure?.code ?? null,
  failure?.params ? JSON.stringify(failure.params) : null,
];

/** The credential a row points at, with the two facts the row copies from it. */
export type CredentialRef = { id: number; username: string; hasPassword: boolean } | null;

export const keptCredential = (existing: Row): CredentialRef =>
  existing.credential_id === null
    ? null
    : { id: existing.credential_id as number, username: existing.username as string, hasPassword: flag(existing.has_password) };

/**
 * What an import does with one row, given the stored row of its id (null: none yet): create it; refuse
 * it (the stored source is outside the departments the importer may write); keep it as it is; or update it.
 */
export function importAction(existing: Row | null, w: SourceWrite, writable: PathRange[]): 'create' | 'refuse' | 'keep' | 'update' {
  if (!existing) return 'create';
  if (!writable.some(([from, to]) => (existing.dept_path as string) >= from && (existing.dept_path as string) < to)) return 'refuse';
  return sameSource(existing, w) ? 'keep' : 'update';
}

/** Whether an import's row would leave the stored source (joined with its credential's fingerprint) as it is. */
export function sameSource(existing: Row, w: SourceWrite): boolean {
  const credentialSame =
    w.credential === 'keep' ||
    (w.credential === null
      ? existing.credential_id === null
      : existing.fingerprint instanceof Buffer && existing.fingerprint.equals(w.credential.fingerprint));
  return (
    credentialSame &&
    existing.name === w.name &&
    existing.department_id === w.departmentId &&
    existing.level === w.level &&
    existing.address === w.address &&
    existing.url === w.url &&
    (existing.sub_url ?? null) === w.subUrl &&
    existing.protocol === w.protocol &&
    existing.codec === w.codec &&
    (existing.lat ?? null) === w.lat &&
    (existing.lon ?? null) === w.lon &&
    existing.tags === packTags(w.tags) &&
    flag(existing.enabled) === w.enabled
  );
}

export function toDepartment(r: Row): DepartmentRecord {
  return {
    id: r.id as string,
    name: r.name as string,
    parentId: text(r.parent_id),
    level: r.level as DepartmentRecord['level'],
    path: r.path as string,
    createdAt: r.created_at as number,
    updatedAt: r.updated_at as number,
  };
}

export function toUser(r: Row): UserRecord {
  return {
    id: r.id as string,
    username: r.username as string,
    displayName: r.display_name as string,
    passwordHash: r.password_hash as string,
    roles: JSON.parse(r.roles as string),
    scopes: JSON.parse(r.scopes as string),
    disabled: flag(r.disabled),
    tokenVersion: r.token_version as number,
    tokensRevokedAt: r.tokens_revoked_at as number,
    createdAt: r.created_at as number,
    updatedAt: r.updated_at as number,
  };
}

export function toAuditEntry(r: Row): AuditEntry {
  return {
    seq: r.seq as number,
    at: r.at as number,
    actor: r.actor as string,
    actorIp: r.actor_ip as string,
    action: r.action as string,
    target: r.target as string,
    outcome: r.outcome as AuditEntry['outcome'],
    detail: JSON.parse(r.detail as string),
    scopePath: text(r.scope_path),
  };
}

export const toWall = (r: Row, tiles: TileRows): WallRow & { tiles: TileRows } => ({
  id: r.id as string,
  departmentId: r.department_id as string,
  deptPath: r.dept_path as string,
  version: r.version as number,
  doc: r.doc as string,
  tiles,
});

/** Tiles by wall from wall_tiles rows. */
export function tilesByWall(rows: Row[]): Map<string, TileRows> {
  const tiles = new Map<string, TileRows>();
  for (const r of rows) {
    const wall = r.wall_id as string;
    if (!tiles.has(wall)) tiles.set(wall, new Map());
    tiles.get(wall)!.set(r.tile_id as string, r.doc as string);
  }
  return tiles;
}

export function toPreset(r: Row): PresetRow {
  return {
    id: r.id as string,
    wallId: r.wall_id as string,
    kind: r.kind as PresetRow['kind'],
    name: r.name as string,
    priority: r.priority as number,
    state: r.state as string,
    createdBy: r.created_by as string,
    createdAt: r.created_at as number,
  };
}

/** Vehicle ids to their channels' source ids, from vehicle_channels rows. */
export function sourcesByVehicle(rows: Row[]): Map<string, string[]> {
  const sources = new Map<string, string[]>();
  for (const r of rows) {
    const list = sources.get(r.vehicle_id as string) ?? [];
    list.push(r.source_id as string);
    sources.set(r.vehicle_id as string, list);
  }
  return sources;
}

export const toVehicle = (r: Row, sourceIds: string[]): VehicleRow => ({
  id: r.id as string,
  plate: r.plate as string,
  departmentId: r.department_id as string,
  deptPath: r.dept_path as string,
  version: r.version as number,
  doc: r.doc as string,
  sourceIds,
});

export function toPosition(r: Row): PositionRow {
  return {
    vehicleId: r.vehicle_id as string,
    at: r.at as number,
    lat: r.lat as number,
    lon: r.lon as number,
    speed: r.speed as number,
    heading: r.heading as number,
  };
}

/** An alarm joined with its alarm_snapshots row (s_* columns; s_has: whether the picture is stored). */
export function toAlarm(r: Row): AlarmRow {
  const snapshot = flag(r.s_has) ? { cameraId: r.s_camera as string, takenAt: r.s_at as number, width: r.s_width as number, height: r.s_height as number } : null;
  return {
    evidence: { snapshot, snapshotError: snapshot ? null : text(r.s_error) },
    id: r.id as string,
    vehicleId: r.vehicle_id as string,
    deptPath: r.dept_path as string,
    type: r.type as string,
    state: r.state as AlarmRow['state'],
    raisedAt: r.raised_at as number,
    updatedAt: r.updated_at as number,
    doc: r.doc as string,
  };
}

export function toRule(r: Row): RuleRow {
  return {
    id: r.id as string,
    kind: r.kind as RuleRow['kind'],
    departmentId: r.department_id as string,
    deptPath: r.dept_path as string,
    version: r.version as number,
    doc: r.doc as string,
  };
}

export function toGbDevice(r: Row): GbDeviceRecord {
  return {
    id: r.id as string,
    name: r.name as string,
    departmentId: r.department_id as string,
    deptPath: r.dept_path as string,
    sealedPassword: (r.sealed_password as Buffer | null) ?? null,
    streamMode: r.stream_mode as GbDeviceRecord['streamMode'],
    origin: r.origin as GbDeviceRecord['origin'],
    ruleId: text(r.rule_id),
    enabled: flag(r.enabled),
    online: flag(r.online),
    transport: (r.transport as GbDeviceRecord['transport']) ?? null,
    address: text(r.address),
    port: num(r.port),
    registeredAt: num(r.registered_at),
    expiresAt: num(r.expires_at),
    lastKeepaliveAt: num(r.last_keepalive_at),
    manufacturer: text(r.manufacturer),
    model: text(r.model),
    firmware: text(r.firmware),
    channelCount: r.channel_count as number,
    catalogAt: num(r.catalog_at),
    createdAt: r.created_at as number,
    updatedAt: r.updated_at as number,
  };
}

export function toGbRule(r: Row): GbAdmissionRule {
  return {
    id: r.id as string,
    prefix: r.prefix as string,
    departmentId: r.department_id as string,
    deptPath: r.dept_path as string,
    sealedPassword: r.sealed_password as Buffer,
    streamMode: r.stream_mode as GbAdmissionRule['streamMode'],
    createdAt: r.created_at as number,
  };
}

export function toGbRefusal(r: Row): GbRefusal {
  return {
    deviceId: r.device_id as string,
    address: r.address as string,
    reason: r.reason as GbRefusal['reason'],
    deptPath: text(r.dept_path),
    firstAt: r.first_at as number,
    lastAt: r.last_at as number,
    count: r.count as number,
  };
}

export function toJtTerminal(r: Row): JtTerminalRecord {
  return {
    sim: r.sim as string,
    vehicleId: r.vehicle_id as string,
    authCode: r.auth_code as string,
    edition: r.edition as JtTerminalRecord['edition'],
    phone: r.phone as string,
    plate: r.plate as string,
    plateColor: r.plate_color as number,
    terminalId: r.terminal_id as string,
    manufacturer: r.manufacturer as string,
    model: r.model as string,
    registeredAt: r.registered_at as number,
    seenAt: num(r.seen_at),
    address: text(r.address),
  };
}

export function toJtRefusal(r: Row): JtRefusal {
  return {
    sim: r.sim as string,
    address: r.address as string,
    reason: r.reason as JtRefusal['reason'],
    deptPath: text(r.dept_path),
    plate: r.plate as string,
    plateColor: r.plate_color as number,
    terminalId: r.terminal_id as string,
    manufacturer: r.manufacturer as string,
    model: r.model as string,
    firstAt: r.first_at as number,
    lastAt: r.last_at as number,
    count: r.count as number,
  };
}
