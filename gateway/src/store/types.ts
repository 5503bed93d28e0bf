/**
 * The store interface. The embedded SQLite store implements it today; a PostgreSQL store
 * for the cluster mode must satisfy the same contract, which is why every call is async
 * and every multi-row change is one call (one transaction) rather than a sequence.
 */

import type { ErrorParams } from '../errors.js';

export const LEVELS = ['national', 'province', 'city', 'county', 'township', 'site'] as const;
export type Level = (typeof LEVELS)[number];

/** 'rtmp-push': the camera publishes to the gateway's RTMP ingest instead of being pulled. */
export const PROTOCOLS = ['rtsp', 'rtsps', 'rtmp', 'rtmps', 'hls', 'http-flv', 'srt', 'rtmp-push', 'gb28181', 'jt1078'] as const;
export type Protocol = (typeof PROTOCOLS)[number];

export const CODECS = ['h264', 'h265', 'unknown'] as const;
export type Codec = (typeof CODECS)[number];

export const HEALTH = ['online', 'offline', 'unknown'] as const;
export type Health = (typeof HEALTH)[number];

/**
 * A supervisor drives walls like an operator and may also break other operators' locks and manage walls and plans.
 * A feed is a service account of a vehicle platform (a JT/T 808 gateway): it reports positions and alarms, nothing else.
 */
export const ROLES = ['admin', 'supervisor', 'operator', 'regulator', 'auditor', 'feed'] as const;
export type Role = (typeof ROLES)[number];

export interface DepartmentRecord {
  id: string;
  name: string;
  parentId: string | null;
  level: Level;
  /** Materialised path of ids, "/root/child/": a subtree is one index range. */
  path: string;
  createdAt: number;
  updatedAt: number;
}

/** A camera password sealed by the registry; the store never sees it in clear. */
export interface SealedCredential {
  /** Keyed hash of user name and password: equal credentials share one row, and re-imports compare without decrypting. */
  fingerprint: Buffer;
  username: string;
  sealedPassword: Buffer | null;
}

export interface SourceFields {
  id: string;
  name: string;
  departmentId: string;
  deptPath: string;
  level: Level;
  address: string;
  url: string;
  subUrl: string | null;
  protocol: Protocol;
  codec: Codec;
  lat: number | null;
  lon: number | null;
  tags: string[];
  enabled: boolean;
}

export interface SourceRecord extends SourceFields {
  /** Registration order (the row id): the order of text search results. */
  seq: number;
  username: string | null;
  hasPassword: boolean;
  health: Health;
  /** The English message of the failure that made the camera offline (API users, logs). */
  healthError: string | null;
  /** Its GW_ERR_* code and parameters, which a page words in its own language; null in rows written before migration 6. */
  healthCode: string | null;
  healthParams: ErrorParams | null;
  healthSince: number | null;
  version: number;
  createdAt: number;
  updatedAt: number;
}

/** Why a camera is offline: the stream engine's last failure. */
export interface HealthFailure {
  code: string;
  message: string;
  params: ErrorParams | null;
}

/** 'keep' leaves the stored credential as it is; null removes it. */
export type CredentialChange = SealedCredential | null | 'keep';

export interface SourceWrite extends SourceFields {
  credential: CredentialChange;
}

/** A half-open range of department paths [from, to): one department subtree. */
export type PathRange = readonly [from: string, to: string];
/** What an admin sees of a refused list: rows in the ranges, and rows of no department when includeUnscoped. */
export interface RefusalScope {
  ranges: PathRange[];
  includeUnscoped: boolean;
}

/** The end of a subtree's path range: "/a/b/" covers every path below it and stops before "/a/b0". */
export const subtreeEnd = (path: string) => path.slice(0, -1) + String.fromCharCode(path.charCodeAt(path.length - 1) + 1);

export interface SourceQuery {
  /** Sorted, disjoint subtrees to search; an empty list matches nothing. */
  ranges: PathRange[];
  level?: Level;
  protocol?: Protocol;
  tag?: string;
  health?: Health;
  enabled?: boolean;
  text?: string;
  bbox?: { minLat: number; minLon: number; maxLat: number; maxLon: number };
  /** Where the previous page stopped; its kind must match the query's order (text or not). */
  after?: SourceCursor;
  limit: number;
}

/**
 * Lists without text are ordered by department path then id (a department is one index range);
 * text searches by registration order (the search index yields hits in that order and stops early).
 */
export type SourceCursor = { path: string; id: string } | { seq: number };

export interface SourcePage {
  items: SourceRecord[];
  /** Set when more rows follow. */
  next: SourceCursor | null;
}

export type UpdateResult =
  | { status: 'updated'; record: SourceRecord }
  | { status: 'not-found' }
  | { status: 'version-conflict'; current: SourceRecord };

export interface ImportRow {
  line: number;
  write: SourceWrite;
}

export interface ImportOutcome {
  created: number;
  updated: number;
  unchanged: number;
  /** Rows refused inside the transaction (an id registered outside the importer's departments). */
  refused: { line: number; id: string }[];
  applied: boolean;
}

export interface DepartmentCounts {
  total: number;
  online: number;
  offline: number;
}

export interface SourceRepo {
  get(id: string): Promise<SourceRecord | null>;
  /** Throws StoreConflict when the id exists. */
  create(write: SourceWrite, now: number): Promise<SourceRecord>;
  update(id: string, write: SourceWrite, expectedVersion: number, now: number): Promise<UpdateResult>;
  /** `{inUse: plate}` while a vehicle channel names the source. */
  delete(id: string, expectedVersion?: number): Promise<UpdateResult['status'] | 'deleted' | { inUse: string }>;
  list(query: SourceQuery): Promise<SourcePage>;
  /**
   * Upserts by id in one transaction. Existing rows outside `writable` are refused; with
   * allOrNothing any refusal rolls everything back. Rows equal to what is stored are left alone.
   */
  importRows(rows: ImportRow[], writable: PathRange[], allOrNothing: boolean, now: number): Promise<ImportOutcome>;
  /** Own counts per department id (not rolled up). */
  countsByDepartment(): Promise<Map<string, DepartmentCounts>>;
  /**
   * `failure` is null when the camera is online. With a `fence` (the camera lease's fencing token,
   * increasing per camera) the write is made only if no write with a higher fence came before, so a
   * node that lost the camera cannot overwrite its new owner; false when fenced out (or no such source
   * for a fenced write). Without a fence the write is unconditional.
   */
  setHealth(id: string, health: Health, failure: HealthFailure | null, since: number, fence?: number): Promise<boolean>;
  /** Many cameras' health in one transaction (a GB device's catalog, or the device going offline); returns the ids fenced out. */
  setHealthMany(changes: { id: string; health: Health; failure: HealthFailure | null }[], since: number, fence?: number): Promise<string[]>;
  /** The sealed credential, for the stream engine only. */
  sealedCredential(id: string): Promise<SealedCredential | null>;
}

export interface DepartmentRepo {
  all(): Promise<DepartmentRecord[]>;
  create(dep: Omit<DepartmentRecord, 'createdAt' | 'updatedAt'>, now: number): Promise<DepartmentRecord>;
  /** Renames and/or moves; moving rewrites the paths of the subtree and of its sources in one transaction. */
  update(id: string, changes: { name?: string; parentId?: string | null; level?: Level; path?: string }, now: number): Promise<DepartmentRecord>;
  /** Refuses (returns false) while the department has children or sources. */
  delete(id: string): Promise<boolean>;
}

export interface UserRecord {
  id: string;
  username: string;
  displayName: string;
  passwordHash: string;
  roles: Role[];
  scopes: string[];
  disabled: boolean;
  /** Bumped on password, role, scope or state changes: older tokens stop working. */
  tokenVersion: number;
  /** "Signed out everywhere": tokens issued at or before this time (ms) are refused; 0 when never. */
  tokensRevokedAt: number;
  createdAt: number;
  updatedAt: number;
}

export interface UserRepo {
  get(id: string): Promise<UserRecord | null>;
  byUsername(username: string): Promise<UserRecord | null>;
  list(): Promise<UserRecord[]>;
  count(): Promise<number>;
  /** Throws StoreConflict when the user name is taken. */
  create(user: UserRecord): Promise<UserRecord>;
  /** Writes everything but `tokensRevokedAt`, which only revokeTokens moves (so a stale copy cannot undo a sign-out). */
  update(user: UserRecord): Promise<UserRecord>;
  /** Refuses the user's tokens issued at or before `issuedUpTo` (ms); never moves the time back. False for an unknown user. */
  revokeTokens(id: string, issuedUpTo: number): Promise<boolean>;
}

/** A signed-out session: its tokens are refused until the last of them would have expired anyway. */
export interface RevokedSession {
  sessionId: string;
  userId: string;
  expiresAt: number;
}

/** The deny list of signed-out sessions. Small: an entry lives no longer than a token. */
export interface SessionRepo {
  /** Denies a session (keeping the later expiry when it is denied again), and forgets every denial past its expiry. */
  revoke(session: RevokedSession, now: number): Promise<void>;
  isRevoked(sessionId: string): Promise<boolean>;
  /** How many denials are kept, expired ones included until the next prune. */
  count(): Promise<number>;
}

export interface AuditEntry {
  seq: number;
  at: number;
  actor: string;
  actorIp: string;
  action: string;
  target: string;
  outcome: 'ok' | 'denied' | 'failed';
  detail: Record<string, unknown>;
  /** The department subtree the event concerns, so an auditor sees only their departments; null for the whole system. */
  scopePath: string | null;
}

export interface AuditRepo {
  append(entry: Omit<AuditEntry, 'seq'>): Promise<void>;
  /** Newest first; `before` is the seq to continue below. */
  list(query: { before?: number; limit: number; actor?: string; action?: string; ranges: PathRange[]; includeSystem: boolean }): Promise<AuditEntry[]>;
}

/**
 * A video wall as the control plane stores it: a versioned JSON document for the wall, and one per
 * tile, so an assignment rewrites one small row rather than the whole wall.
 */
export interface WallRow {
  id: string;
  departmentId: string;
  /** The department's path when the wall was saved, for listing a scope without parsing documents. */
  deptPath: string;
  version: number;
  /** The control plane's wall document without its tiles; the store does not look inside. */
  doc: string;
}

/** Tile documents by tile id. */
export type TileRows = Map<string, string>;

/** A saved wall state: a preset recalled by hand, or an emergency plan with a priority. */
export interface PresetRow {
  id: string;
  wallId: string;
  kind: 'preset' | 'plan';
  name: string;
  priority: number;
  /** The saved state, as JSON. */
  state: string;
  createdBy: string;
  createdAt: number;
}

type AuditWrite = Omit<AuditEntry, 'seq'>;

/** Every write is one transaction with its audit entry, so a change is either recorded and durable or not made. */
export interface WallRepo {
  all(): Promise<(WallRow & { tiles: TileRows })[]>;
  /** One wall as stored, for a node that must reload it (another node saved a newer version). */
  get(id: string): Promise<(WallRow & { tiles: TileRows }) | null>;
  /** Throws StoreConflict when the id exists. */
  create(row: WallRow, tiles: TileRows, audit: AuditWrite): Promise<void>;
  /**
   * Writes a new version with the tiles that changed (`replace`: these are all the wall's tiles now);
   * the write is durable when the promise resolves. Only when the stored version is `row.version - 1`:
   * otherwise (another node wrote that version first, or the wall is gone) throws StoreConflict and
   * writes nothing. Versions come from the database: two nodes can never both write version N.
   */
  save(row: WallRow, tiles: { rows: TileRows; replace: boolean }, audit: AuditWrite | null): Promise<void>;
  /** Removes the wall and its presets and plans. */
  delete(id: string, audit: AuditWrite): Promise<boolean>;
  presets(): Promise<PresetRow[]>;
  /** Throws StoreConflict when the wall already has a preset or plan of that kind and name. */
  createPreset(row: PresetRow, audit: AuditWrite): Promise<void>;
  deletePreset(id: string, audit: AuditWrite): Promise<boolean>;
}

/**
 * A monitored vehicle. The store keeps its document whole, and its channels' sources in a table of
 * their own so that one camera source belongs to at most one vehicle channel and cannot be deleted under it.
 */
export interface VehicleRow {
  id: string;
  plate: string;
  departmentId: string;
  deptPath: string;
  version: number;
  /** The vehicle as the vehicles module defines it, as JSON. */
  doc: string;
  sourceIds: string[];
  /** Written: its SIM with the leading zeros stripped (as in the doc, so migration 9's index finds it), '' for none; at most one vehicle's. */
  sim?: string;
}

export type VehicleWriteResult = 'ok' | 'not-found' | 'version-conflict' | { conflict: 'id' | 'plate' | 'source' | 'sim'; value: string };

export interface PositionRow {
  vehicleId: string;
  at: number;
  lat: number;
  lon: number;
  speed: number;
  heading: number;
}

export interface AlarmRow {
  id: string;
  vehicleId: string;
  deptPath: string;
  type: string;
  state: 'raised' | 'acknowledged' | 'closed';
  raisedAt: number;
  updatedAt: number;
  doc: string;
  /** Filled on reads from alarm_snapshots (the alarm's document does not hold it); ignored on writes. */
  evidence?: AlarmEvidence;
}

/** The picture an alarm keeps, without its bytes. */
export interface AlarmSnapshotInfo {
  cameraId: string;
  takenAt: number;
  width: number;
  height: number;
}

/** What became of an alarm's picture: taken, failed (the error, as written), or never asked for or pruned (both null). */
export interface AlarmEvidence {
  snapshot: AlarmSnapshotInfo | null;
  snapshotError: string | null;
}

export interface AlarmSnapshotWrite {
  alarmId: string;
  cameraId: string | null;
  /** When the picture's keyframe arrived, or when the attempt failed. */
  takenAt: number;
  width: number;
  height: number;
  jpeg: Buffer | null;
  /** Why there is none: the error as the vehicles module writes it (JSON: code, message, params). */
  error: string | null;
}

export interface AlarmQuery {
  ranges: PathRange[];
  states?: AlarmRow['state'][];
  vehicleId?: string;
  type?: string;
  /** Raised at or after. */
  since?: number;
  /** Newest first; continue below this (raisedAt, id). */
  before?: { raisedAt: number; id: string };
  limit: number;
}

/** Geofences and linkage rules: small versioned documents in a department. */
export interface RuleRow {
  id: string;
  kind: 'geofence' | 'linkage';
  departmentId: string;
  deptPath: string;
  version: number;
  doc: string;
}

export interface VehicleRepo {
  all(): Promise<VehicleRow[]>;
  /** `expectedVersion` null creates. Channel sources must exist and be free. */
  put(row: VehicleRow, expectedVersion: number | null, audit: AuditWrite): Promise<VehicleWriteResult>;
  delete(id: string, expectedVersion: number | undefined, audit: AuditWrite): Promise<'deleted' | 'not-found' | 'version-conflict'>;
  /**
   * Creates or replaces each row (by id) in one transaction; a row that collides (plate, source) is
   * refused with the reason, and with allOrNothing any refusal rolls everything back.
   */
  importRows(rows: { line: number; row: VehicleRow; expectedVersion: number | null }[], allOrNothing: boolean, audit: AuditWrite): Promise<{ applied: boolean; refused: { line: number; field: string; message: string }[] }>;
  appendPositions(points: PositionRow[]): Promise<void>;
  /** Oldest first. */
  track(vehicleId: string, from: number, to: number, limit: number): Promise<PositionRow[]>;
  /** Each vehicle's newest stored position. */
  latestPositions(): Promise<PositionRow[]>;
  /** Removes points older than `before`, except each vehicle's newest. */
  prunePositions(before: number): Promise<number>;
}

export interface AlarmRepo {
  /**
   * Inserts or replaces, unless the stored alarm is further along (raised < acknowledged < closed):
   * nodes write one alarm at once (a repeat on the node that raised it, a close on another), and a
   * handled alarm never comes back. Returns false when refused; the audit entry (acknowledgement,
   * closure) goes in the same transaction, only with a write that happened.
   */
  save(row: AlarmRow, audit: AuditWrite | null): Promise<boolean>;
  get(id: string): Promise<AlarmRow | null>;
  open(): Promise<AlarmRow[]>;
  list(q: AlarmQuery): Promise<AlarmRow[]>;
  /**
   * Stores an alarm's picture (or why there is none), then removes the oldest rows until at most
   * maxCount are kept and their pictures hold at most maxBytes; returns the alarms whose row went.
   */
  saveSnapshot(w: AlarmSnapshotWrite, bounds: { maxCount: number; maxBytes: number }): Promise<string[]>;
  /** The alarm's picture with its JPEG, or null when it has none. */
  snapshot(alarmId: string): Promise<(AlarmSnapshotInfo & { jpeg: Buffer }) | null>;
}

export interface RuleRepo {
  all(kind: RuleRow['kind']): Promise<RuleRow[]>;
  /** `expectedVersion` null creates (StoreConflict when the id exists). */
  put(row: RuleRow, expectedVersion: number | null, audit: AuditWrite): Promise<'ok' | 'not-found' | 'version-conflict'>;
  delete(kind: RuleRow['kind'], id: string, audit: AuditWrite): Promise<boolean>;
}

// ---- GB/T 28181 ------------------------------------------------------------------------------

export const GB_STREAM_MODES = ['udp', 'tcp-passive', 'tcp-active'] as const;
export type GbStreamMode = (typeof GB_STREAM_MODES)[number];

/** Where a device stands now, as the SIP service last saw it. */
export interface GbPresence {
  online: boolean;
  transport: 'udp' | 'tcp' | null;
  address: string | null;
  port: number | null;
  registeredAt: number | null;
  expiresAt: number | null;
  lastKeepaliveAt: number | null;
}

/** What a device says about itself (DeviceInfo). */
export interface GbDeviceInfo {
  manufacturer: string | null;
  model: string | null;
  firmware: string | null;
}

/**
 * A GB/T 28181 device or lower platform allowed to register: added by an admin, or created by an
 * admission rule the first time a matching id registered. Its digest password is sealed.
 */
export interface GbDeviceRecord extends GbPresence, GbDeviceInfo {
  id: string;
  name: string;
  departmentId: string;
  deptPath: string;
  sealedPassword: Buffer | null;
  streamMode: GbStreamMode;
  origin: 'admin' | 'rule';
  ruleId: string | null;
  /** A disabled device is refused at registration (refusal reason 'disabled'). */
  enabled: boolean;
  channelCount: number;
  catalogAt: number | null;
  createdAt: number;
  updatedAt: number;
}

/** An admin's standing decision: ids starting with `prefix` may register into `departmentId` with this password. */
export interface GbAdmissionRule {
  id: string;
  /** 1-20 digits; the longest matching prefix wins. */
  prefix: string;
  departmentId: string;
  deptPath: string;
  sealedPassword: Buffer;
  streamMode: GbStreamMode;
  createdAt: number;
}

export const GB_REFUSAL_REASONS = ['unknown', 'password', 'disabled'] as const;

/** Refused registration attempts, one row per device id and address. */
export interface GbRefusal {
  deviceId: string;
  address: string;
  reason: (typeof GB_REFUSAL_REASONS)[number];
  /** The known device's department path ('password', 'disabled'); null for an unknown id, which only whole-system admins see. */
  deptPath: string | null;
  firstAt: number;
  lastAt: number;
  count: number;
}

/** Fields an admin may change on a device; `sealedPassword` undefined keeps the stored one. */
export type GbDeviceChanges = Partial<Pick<GbDeviceRecord, 'name' | 'departmentId' | 'deptPath' | 'sealedPassword' | 'streamMode' | 'enabled'>>;

export interface GbRepo {
  getDevice(id: string): Promise<GbDeviceRecord | null>;
  /** Ordered by department path then id; `after` continues from a previous page's last row. */
  listDevices(q: { ranges: PathRange[]; after?: { path: string; id: string }; limit: number }): Promise<GbDeviceRecord[]>;
  /** Creates the device and forgets its refusals, with the audit entry. Throws StoreConflict when the id exists. */
  createDevice(device: GbDeviceRecord, audit: AuditWrite): Promise<void>;
  updateDevice(id: string, changes: GbDeviceChanges, now: number, audit: AuditWrite): Promise<GbDeviceRecord | null>;
  deleteDevice(id: string, audit: AuditWrite): Promise<boolean>;
  /** False for an unknown device. */
  setPresence(id: string, presence: GbPresence, now: number): Promise<boolean>;
  /** `name` replaces the name only of a device still named by its id (one a rule created). */
  setInfo(id: string, info: GbDeviceInfo & { name?: string }, now: number): Promise<boolean>;
  setCatalog(id: string, channelCount: number, at: number): Promise<boolean>;
  /** Every rule (a handful); scope filtering is the caller's. */
  rules(): Promise<GbAdmissionRule[]>;
  /** Throws StoreConflict when the id or the prefix exists. */
  createRule(rule: GbAdmissionRule, audit: AuditWrite): Promise<void>;
  deleteRule(id: string, audit: AuditWrite): Promise<boolean>;
  /** Counts an attempt; keeps at most `maxRows` rows, dropping the least recent. */
  recordRefusal(r: { deviceId: string; address: string; reason: GbRefusal['reason']; deptPath: string | null; at: number }, maxRows: number): Promise<void>;
  /** Most recent first: rows in `ranges`, and rows of unknown ids when `includeUnscoped`. */
  refusals(q: { ranges: PathRange[]; includeUnscoped: boolean; limit: number }): Promise<GbRefusal[]>;
  /** Forgets every refused attempt of the id; the number of rows removed. */
  /** Deletes the device's refused attempts within the scope only (rows of departments the actor cannot see stay). */
  deleteRefusals(deviceId: string, scope: RefusalScope, audit: AuditWrite | null): Promise<number>;
}

// ---- JT/T 808 ------------------------------------------------------------------------------

/** What a terminal says about itself in its registration (0x0100). */
export interface JtTerminalInfo {
  plate: string;
  /** JT/T 415 / JT/T 697.7 code: 0 none, 1 blue, 2 yellow, 3 black, 4 white, 9 other. */
  plateColor: number;
  terminalId: string;
  manufacturer: string;
  model: string;
}

/** A terminal that registered: the auth code it must present on every later connection. */
export interface JtTerminalRecord extends JtTerminalInfo {
  /** The phone/SIM number, leading zeros stripped. */
  sim: string;
  vehicleId: string;
  authCode: string;
  edition: '2011' | '2013' | '2019';
  /** The BCD digits as it sent them (12 or 20). */
  phone: string;
  registeredAt: number;
  /** When it last authenticated or its link last ended; null if never since it registered. */
  seenAt: number | null;
  /** address:port of its last connection. */
  address: string | null;
}

export const JT_REFUSAL_REASONS = ['unknown', 'auth', 'terminal', 'plate', 'registered', 'unauthenticated'] as const;

/** Refused terminals, one row per SIM and address, with what they sent. */
export interface JtRefusal extends JtTerminalInfo {
  sim: string;
  address: string;
  /**
   * unknown: no vehicle has this SIM; auth: a wrong or missing auth code; terminal: it registered with another terminal id than its vehicle's;
   * plate: auto-registration could not use its plate; registered: another terminal holds the code of a vehicle without a terminal id;
   * unauthenticated: it sent data without authenticating (listed once per connection).
   */
  reason: (typeof JT_REFUSAL_REASONS)[number];
  /** The department path of the vehicle the SIM belongs to; null for an unknown SIM, which only whole-system admins see. */
  deptPath: string | null;
  firstAt: number;
  lastAt: number;
  count: number;
}

export interface JtRepo {
  getTerminal(sim: string): Promise<JtTerminalRecord | null>;
  /** Every registered terminal (one per vehicle: a fleet's worth, read at start and for the admin list). */
  terminals(): Promise<JtTerminalRecord[]>;
  /** Creates or replaces the terminal of this SIM (a new registration), and forgets the SIM's refusals. */
  putTerminal(t: JtTerminalRecord): Promise<void>;
  /** Its link came up or went down. False for an unknown SIM. */
  setSeen(sim: string, at: number, address: string | null, edition: JtTerminalRecord['edition'] | null): Promise<boolean>;
  /** The terminal unregistered (0x0003), its vehicle went or an admin reset it: its auth code is no longer good. Only the row of that vehicle. */
  deleteTerminal(sim: string, vehicleId: string, audit?: AuditWrite): Promise<boolean>;
  /** Counts an attempt; keeps at most `maxRows` rows, dropping the least recent. */
  recordRefusal(r: Omit<JtRefusal, 'firstAt' | 'lastAt' | 'count'> & { at: number }, maxRows: number): Promise<void>;
  /** Most recent first: rows in `ranges`, and rows of unknown SIMs when `includeUnscoped`. */
  refusals(q: { ranges: PathRange[]; includeUnscoped: boolean; limit: number }): Promise<JtRefusal[]>;
  /** Forgets the refused attempts of the SIM within the scope (as refusals() sees it); the number of rows removed. */
  deleteRefusals(sim: string, scope: RefusalScope, audit: AuditWrite | null): Promise<number>;
}

export interface Store {
  readonly sources: SourceRepo;
  readonly vehicles: VehicleRepo;
  readonly alarms: AlarmRepo;
  readonly rules: RuleRepo;
  readonly departments: DepartmentRepo;
  readonly users: UserRepo;
  readonly sessions: SessionRepo;
  readonly audit: AuditRepo;
  readonly walls: WallRepo;
  readonly gb: GbRepo;
  readonly jt: JtRepo;
  /** Schema version after migrations. */
  schemaVersion(): Promise<number>;
  close(): Promise<void>;
}

export class StoreConflict extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StoreConflict';
  }
}
