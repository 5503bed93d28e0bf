/**
 * Versioned schema. Each entry runs once, in order, inside a transaction, and PRAGMA user_version
 * records how far a database has come. Append new versions; never edit a shipped one.
 */
export const migrations: { version: number; description: string; sql: string }[] = [
  {
    version: 1,
    description: 'departments, credentials, sources with their search index, users, append-only audit log',
    sql: `
      CREATE TABLE departments (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        parent_id TEXT REFERENCES departments(id),
        level TEXT NOT NULL,
        path TEXT NOT NULL UNIQUE,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
      );
      CREATE INDEX departments_parent ON departments(parent_id);

      CREATE TABLE credentials (
        id INTEGER PRIMARY KEY,
        fingerprint BLOB NOT NULL UNIQUE,
        username TEXT NOT NULL,
        sealed_password BLOB
      );

      CREATE TABLE sources (
        rowid INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL,
        department_id TEXT NOT NULL REFERENCES departments(id),
        dept_path TEXT NOT NULL,
        level TEXT NOT NULL,
        address TEXT NOT NULL DEFAULT '',
        search_key TEXT NOT NULL,
        url TEXT NOT NULL,
        sub_url TEXT,
        protocol TEXT NOT NULL,
        credential_id INTEGER REFERENCES credentials(id),
        username TEXT,
        has_password INTEGER NOT NULL DEFAULT 0,
        codec TEXT NOT NULL,
        lat REAL,
        lon REAL,
        tags TEXT NOT NULL DEFAULT '',
        enabled INTEGER NOT NULL,
        health TEXT NOT NULL DEFAULT 'unknown',
        health_error TEXT,
        health_since INTEGER,
        version INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
      );
      -- Lists are ordered by (dept_path, id): a department filter and a cursor page are one index range.
      CREATE INDEX sources_dept_path ON sources(dept_path, id);
      CREATE INDEX sources_department ON sources(department_id, health);
      CREATE INDEX sources_credential ON sources(credential_id) WHERE credential_id IS NOT NULL;

      -- Text search index, kept by the store (see search-terms.ts): contentless, no positions.
      CREATE VIRTUAL TABLE sources_search USING fts5(doc, content='', contentless_delete=1, detail=none, prefix='2');

      CREATE TABLE users (
        id TEXT PRIMARY KEY,
        username TEXT NOT NULL UNIQUE,
        display_name TEXT NOT NULL,
        password_hash TEXT NOT NULL,
        roles TEXT NOT NULL,
        scopes TEXT NOT NULL,
        disabled INTEGER NOT NULL,
        token_version INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
      );

      CREATE TABLE audit (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        at INTEGER NOT NULL,
        actor TEXT NOT NULL,
        actor_ip TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT NOT NULL,
        outcome TEXT NOT NULL,
        detail TEXT NOT NULL,
        scope_path TEXT
      );
      CREATE INDEX audit_actor ON audit(actor, seq);
      CREATE INDEX audit_action ON audit(action, seq);
      CREATE INDEX audit_scope ON audit(scope_path, seq);
      CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
      CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
    `,
  },
  {
    version: 2,
    description: 'video walls (a versioned JSON document each, and one per tile) and their presets and emergency plans',
    sql: `
      CREATE TABLE walls (
        id TEXT PRIMARY KEY,
        department_id TEXT NOT NULL REFERENCES departments(id),
        dept_path TEXT NOT NULL,
        version INTEGER NOT NULL,
        doc TEXT NOT NULL
      );
      CREATE INDEX walls_dept_path ON walls(dept_path);

      CREATE TABLE wall_tiles (
        wall_id TEXT NOT NULL REFERENCES walls(id) ON DELETE CASCADE,
        tile_id TEXT NOT NULL,
        doc TEXT NOT NULL,
        PRIMARY KEY (wall_id, tile_id)
      ) WITHOUT ROWID;

      CREATE TABLE wall_presets (
        id TEXT PRIMARY KEY,
        wall_id TEXT NOT NULL REFERENCES walls(id) ON DELETE CASCADE,
        kind TEXT NOT NULL,
        name TEXT NOT NULL,
        priority INTEGER NOT NULL,
        state TEXT NOT NULL,
        created_by TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        UNIQUE (wall_id, kind, name)
      );
    `,
  },
  {
    version: 3,
    description: 'vehicles, their channels, position tracks, alarms, geofences and linkage rules',
    sql: `
      CREATE TABLE vehicles (
        id TEXT PRIMARY KEY,
        plate TEXT NOT NULL UNIQUE,
        department_id TEXT NOT NULL REFERENCES departments(id),
        dept_path TEXT NOT NULL,
        version INTEGER NOT NULL,
        doc TEXT NOT NULL
      );
      CREATE INDEX vehicles_dept_path ON vehicles(dept_path);

      -- A camera source is at most one vehicle's channel, and is not deleted while it is one.
      CREATE TABLE vehicle_channels (
        source_id TEXT PRIMARY KEY REFERENCES sources(id),
        vehicle_id TEXT NOT NULL REFERENCES vehicles(id) ON DELETE CASCADE
      ) WITHOUT ROWID;
      CREATE INDEX vehicle_channels_vehicle ON vehicle_channels(vehicle_id);

      -- The recent track; pruned past the configured window.
      CREATE TABLE vehicle_positions (
        vehicle_id TEXT NOT NULL,
        at INTEGER NOT NULL,
        lat REAL NOT NULL,
        lon REAL NOT NULL,
        speed REAL NOT NULL,
        heading REAL NOT NULL,
        PRIMARY KEY (vehicle_id, at)
      ) WITHOUT ROWID;
      CREATE INDEX vehicle_positions_at ON vehicle_positions(at);

      CREATE TABLE alarms (
        id TEXT PRIMARY KEY,
        vehicle_id TEXT NOT NULL,
        dept_path TEXT NOT NULL,
        type TEXT NOT NULL,
        state TEXT NOT NULL,
        raised_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        doc TEXT NOT NULL
      );
      CREATE INDEX alarms_open ON alarms(state) WHERE state != 'closed';
      CREATE INDEX alarms_raised ON alarms(raised_at, id);
      CREATE INDEX alarms_vehicle ON alarms(vehicle_id, raised_at);
      CREATE INDEX alarms_dept_path ON alarms(dept_path, raised_at);

      CREATE TABLE vehicle_rules (
        kind TEXT NOT NULL,
        id TEXT NOT NULL,
        department_id TEXT NOT NULL REFERENCES departments(id),
        dept_path TEXT NOT NULL,
        version INTEGER NOT NULL,
        doc TEXT NOT NULL,
        PRIMARY KEY (kind, id)
      ) WITHOUT ROWID;
    `,
  },
  {
    version: 4,
    description: 'ended sessions: the deny list of signed-out sessions, and each user\'s "signed out everywhere" time',
    sql: `
      -- A signed-out session is refused until its last token would have expired; rows past that are pruned.
      CREATE TABLE revoked_sessions (
        session_id TEXT PRIMARY KEY,
        user_id TEXT NOT NULL,
        expires_at INTEGER NOT NULL
      ) WITHOUT ROWID;
      CREATE INDEX revoked_sessions_expiry ON revoked_sessions(expires_at);

      -- Tokens issued at or before this time (ms) are refused; 0 when the user never signed out everywhere.
      ALTER TABLE users ADD COLUMN tokens_revoked_at INTEGER NOT NULL DEFAULT 0;
    `,
  },
  {
    version: 5,
    description: 'alarm evidence: the picture taken when an alarm opened (or why there is none), kept with the alarm',
    sql: `
      -- One row per alarm that asked for a picture: a JPEG, or the error code of the attempt that failed.
      -- Bounded (vehicles.alarmSnapshots.maxCount/maxBytes, oldest first) and deleted with its alarm.
      CREATE TABLE alarm_snapshots (
        alarm_id TEXT PRIMARY KEY REFERENCES alarms(id) ON DELETE CASCADE,
        camera_id TEXT,
        taken_at INTEGER NOT NULL,
        width INTEGER NOT NULL DEFAULT 0,
        height INTEGER NOT NULL DEFAULT 0,
        bytes INTEGER NOT NULL DEFAULT 0,
        error TEXT,
        jpeg BLOB
      );
      -- The prune walks the newest first summing bytes without reading a picture.
      CREATE INDEX alarm_snapshots_age ON alarm_snapshots(taken_at, bytes);
    `,
  },
  {
    version: 6,
    description: "a camera's health reason as its error code and parameters, so a page words it in its own language",
    sql: `
      -- Beside health_error (the English message, still returned for API users); NULL in rows written before.
      ALTER TABLE sources ADD COLUMN health_code TEXT;
      -- JSON: the failure's reason and the values its sentence is filled from (docs/errors.md, Parameters).
      ALTER TABLE sources ADD COLUMN health_params TEXT;
    `,
  },
  {
    version: 7,
    description: 'GB/T 28181: the devices allowed to register, admission rules, and refused registration attempts',
    sql: `
      CREATE TABLE gb_devices (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        department_id TEXT NOT NULL REFERENCES departments(id),
        dept_path TEXT NOT NULL,
        -- The digest password, sealed by the registry's key (never in clear here).
        sealed_password BLOB,
        stream_mode TEXT NOT NULL,
        origin TEXT NOT NULL,
        rule_id TEXT,
        enabled INTEGER NOT NULL DEFAULT 1,
        online INTEGER NOT NULL DEFAULT 0,
        transport TEXT,
        address TEXT,
        port INTEGER,
        registered_at INTEGER,
        expires_at INTEGER,
        last_keepalive_at INTEGER,
        manufacturer TEXT,
        model TEXT,
        firmware TEXT,
        channel_count INTEGER NOT NULL DEFAULT 0,
        catalog_at INTEGER,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
      );
      -- Lists are per department subtree, paged by (dept_path, id), as sources are.
      CREATE INDEX gb_devices_dept_path ON gb_devices(dept_path, id);
      CREATE INDEX gb_devices_department ON gb_devices(department_id);

      CREATE TABLE gb_admission_rules (
        id TEXT PRIMARY KEY,
        prefix TEXT NOT NULL UNIQUE,
        department_id TEXT NOT NULL REFERENCES departments(id),
        dept_path TEXT NOT NULL,
        sealed_password BLOB NOT NULL,
        stream_mode TEXT NOT NULL,
        created_at INTEGER NOT NULL
      );
      CREATE INDEX gb_admission_rules_dept_path ON gb_admission_rules(dept_path);
      CREATE INDEX gb_admission_rules_department ON gb_admission_rules(department_id);

      -- One row per (device id, address), counted; bounded by gb28181.refusedListSize, least recent dropped.
      CREATE TABLE gb_refusals (
        device_id TEXT NOT NULL,
        address TEXT NOT NULL,
        reason TEXT NOT NULL,
        dept_path TEXT,
        first_at INTEGER NOT NULL,
        last_at INTEGER NOT NULL,
        count INTEGER NOT NULL,
        PRIMARY KEY (device_id, address)
      ) WITHOUT ROWID;
      CREATE INDEX gb_refusals_last ON gb_refusals(last_at);
    `,
  },
  {
    version: 8,
    description: 'JT/T 808: the terminals that registered (their auth codes) and refused terminals',
    sql: `
      -- One row per terminal that registered, keyed by its SIM (leading zeros stripped): the auth code it
      -- must present on every later connection, and what it said about itself.
      CREATE TABLE jt_terminals (
        sim TEXT PRIMARY KEY,
        vehicle_id TEXT NOT NULL,
        auth_code TEXT NOT NULL,
        edition TEXT NOT NULL,
        phone TEXT NOT NULL,
        plate TEXT NOT NULL DEFAULT '',
        plate_color INTEGER NOT NULL DEFAULT 0,
        terminal_id TEXT NOT NULL DEFAULT '',
        manufacturer TEXT NOT NULL DEFAULT '',
        model TEXT NOT NULL DEFAULT '',
        registered_at INTEGER NOT NULL,
        -- Written when it authenticates and when its link ends, never per message.
        seen_at INTEGER,
        address TEXT
      ) WITHOUT ROWID;
      CREATE INDEX jt_terminals_vehicle ON jt_terminals(vehicle_id);

      -- One row per (SIM, address), counted; bounded by jt808.refusedListSize, least recent dropped.
      CREATE TABLE jt_refusals (
        sim TEXT NOT NULL,
        address TEXT NOT NULL,
        reason TEXT NOT NULL,
        dept_path TEXT,
        plate TEXT NOT NULL DEFAULT '',
        plate_color INTEGER NOT NULL DEFAULT 0,
        terminal_id TEXT NOT NULL DEFAULT '',
        manufacturer TEXT NOT NULL DEFAULT '',
        model TEXT NOT NULL DEFAULT '',
        first_at INTEGER NOT NULL,
        last_at INTEGER NOT NULL,
        count INTEGER NOT NULL,
        PRIMARY KEY (sim, address)
      ) WITHOUT ROWID;
      CREATE INDEX jt_refusals_last ON jt_refusals(last_at);
    `,
  },
  {
    version: 9,
    description: "vehicles: a SIM (leading zeros stripped, as JT/T 808 terminals are matched) is at most one vehicle's",
    sql: `
      -- Looked up on every vehicle write: a second vehicle with a SIM would take over its terminal's reports.
      CREATE INDEX vehicles_sim ON vehicles(ltrim(json_extract(doc, '$.sim'), '0'));
    `,
  },
  {
    version: 10,
    description: "a camera's health fence: the highest lease fencing token that wrote its health (cluster mode)",
    sql: `
      -- A node that lost the camera's lease writes with a lower token and is refused; writes without one leave it alone.
      ALTER TABLE sources ADD COLUMN health_fence INTEGER NOT NULL DEFAULT 0;
    `,
  },
];
