/**
 * Registry benchmark: one 70,000-row import through the real gateway over HTTP, the same rows
 * inserted straight into the store's database for comparison, then list and search latency and the
 * gateway's resident memory. The gateway runs as a child process so that its RSS is its own.
 *
 *   npm run bench:registry                        the embedded SQLite store
 *   npm run bench:registry -- --engine postgres   PostgreSQL (store.engine postgres): a database of
 *                                                 its own, created and dropped, on the server of
 *                                                 WALLGATE_BENCH_PG_URL or WALLGATE_TEST_PG_URL
 *
 * Progress goes to stderr; the last stdout line is one JSON object with the figures.
 * registryOnPostgres(url) runs the PostgreSQL variant for another bench (bench:cluster) and returns the object.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { Agent, request } from 'node:http';
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { generateCity, prng, type CityDepartment } from '../../gateway/src/registry/city.js';
import { PgStore } from '../../gateway/src/store/pg/index.js';
import { SqliteStore } from '../../gateway/src/store/sqlite/index.js';
import { searchDocument, searchKey } from '../../gateway/src/store/sqlite/search-terms.js';
import { createDatabase } from '../cluster-local.js';
import { cleanup, installHarness, log, LOOPBACK_LISTENERS, sleep, tempDir, track } from './harness.js';

type Engine = { kind: 'sqlite' } | { kind: 'postgres'; url: string };

const ROWS = 70_000;
const QUERIES_PER_KIND = 400;
const WARMUP = 50;
const PAGE = 100;
const GUARD_MS = 10 * 60_000;
const TARGETS = { import_ratio: 4, search_p95_ms: 5, page_p95_ms: 5, rss_mb: 200 };

const ROOT_DIR = fileURLToPath(new URL('../..', import.meta.url));
/** Server-side times of the requests the gateway logs at info (writes), from its log. */
const serverTimes: { url: string; ms: number }[] = [];

// ---- the gateway child ----------------------------------------------------------------------

interface Running {
  proc: ChildProcess;
  pid: number;
  base: string;
  adminPassword: string | null;
  exited: Promise<number | null>;
}

async function startGateway(dataDir: string, storeEnv: Record<string, string>): Promise<Running> {
  const env: NodeJS.ProcessEnv = {};
  // Inherited WALLGATE_* settings would change (or, if unknown, stop) the gateway under test.
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('WALLGATE_')) env[k] = v;
  Object.assign(env, {
    ...LOOPBACK_LISTENERS,
    WALLGATE_DATA_DIR: dataDir,
    WALLGATE_LOG_LEVEL: 'info',
    WALLGATE_STREAMS_FLV_RTMP_ENABLED: 'false',
    ...storeEnv,
  });
  // The built gateway, as `npm start` runs it (the npm script builds first).
  const proc = track(spawn(process.execPath, ['dist/main.js'], { cwd: ROOT_DIR, env, stdio: ['ignore', 'pipe', 'pipe'] }));
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  const stderrTail: string[] = [];
  let adminPassword: string | null = null;

  const ready = new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`gateway did not start within 60 s; stderr:\n${stderrTail.join('\n')}`)), 60_000);
    // Both pipes are read to the end so the child never blocks on a full pipe (info logs a line per request).
    createInterface({ input: proc.stdout! }).on('line', (line) => {
      const kind = line.includes('"msg":"request"') ? 'done' : line.includes('wallgate listening') ? 'up' : null;
      if (!kind) return;
      let entry: { msg?: string; address?: string; url?: string; ms?: number };
      try {
        entry = JSON.parse(line);
      } catch {
        return;
      }
      if (kind === 'up' && entry.msg === 'wallgate listening' && entry.address) {
        clearTimeout(timer);
        resolve(entry.address);
      } else if (kind === 'done' && entry.url && typeof entry.ms === 'number') serverTimes.push({ url: entry.url, ms: entry.ms });
    });
    createInterface({ input: proc.stderr! }).on('line', (line) => {
      stderrTail.push(line);
      if (stderrTail.length > 40) stderrTail.shift();
      const m = /created admin user "([^"]+)" with password (\S+)/.exec(line);
      if (m) adminPassword = m[2]!;
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`gateway exited (code ${code}); stderr:\n${stderrTail.join('\n')}`));
    });
  });
  const base = await ready;
  return { proc, pid: proc.pid!, base, adminPassword, exited };
}

async function stopGateway(g: Running) {
  g.proc.kill('SIGTERM');
  const kill = setTimeout(() => g.proc.kill('SIGKILL'), 15_000);
  const code = await g.exited;
  clearTimeout(kill);
  if (code !== 0) log(`gateway exited with code ${code} on SIGTERM`);
}

/** VmRSS (or another /proc status field) of a process, in MiB with one decimal. */
function procMb(pid: number, field = 'VmRSS'): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no ${field} in /proc/${pid}/status`);
  return Math.round((Number(m[1]) / 1024) * 10) / 10;
}

// ---- HTTP -----------------------------------------------------------------------------------

let base = '';
let token = '';

/** A lean keep-alive client (node:http), so the figures are the gateway's and not a heavy client's. */
const agent = new Agent({ keepAlive: true, maxSockets: 1 });

function api(method: string, path: string, body?: unknown, contentType = 'application/json'): Promise<any> {
  const headers: Record<string, string> = {};
  if (token) headers.authorization = `Bearer ${token}`;
  // The import body is a Uint8Array built before its timer starts; anything else is JSON.
  const payload = body === undefined ? undefined : body instanceof Uint8Array ? body : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
  if (payload) {
    headers['content-type'] = contentType;
    headers['content-length'] = String(payload.length);
  }
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const req = request(base + path, { method, headers, agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        // Time to the last byte: the client's own JSON parsing is not the gateway's latency.
        const ms = performance.now() - t0;
        const text = Buffer.concat(chunks).toString('utf8');
        let json: any;
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode!, json, text, ms });
      });
    });
    req.on('error', reject);
    req.end(payload);
  });
}

async function timedGet(path: string): Promise<{ ms: number; json: any }> {
  const r = await api('GET', path);
  if (r.status !== 200) throw new Error(`GET ${path}: ${r.status} ${r.text.slice(0, 300)}`);
  return { ms: r.ms, json: r.json };
}

// ---- figures --------------------------------------------------------------------------------

const round = (x: number, d = 2) => Math.round(x * 10 ** d) / 10 ** d;
function pct(samples: number[], p: number): number {
  const s = [...samples].sort((a, b) => a - b);
  return round(s[Math.max(0, Math.ceil((p / 100) * s.length) - 1)] ?? NaN);
}

// ---- the raw SQLite baseline ----------------------------------------------------------------

/**
 * The same rows straight into SQLite, one transaction, prepared statements: each source row and its
 * search-index row, with everything computed before the timer (the gateway's own work is what the
 * ratio shows). Also timed without the search index, for reference.
 */
async function sqliteRaw(departments: CityDepartment[], sources: Record<string, unknown>[]): Promise<{ withIndex: number; rowsOnly: number }> {
  const time = async (withIndex: boolean) => {
    const dir = tempDir('wallgate-bench-raw-');
    const store = SqliteStore.open(join(dir, 'raw.db'));
    try {
      const now = Date.now();
      const paths = new Map<string, string>([['root', '/root/']]);
      await store.departments.create({ id: 'root', name: 'All departments', parentId: null, level: 'national', path: '/root/' }, now);
      for (const d of departments) {
        await store.departments.create(d, now);
        paths.set(d.id, d.path);
      }
      const rows = sources.map((s) => {
        const tags = s.tags as string[];
        const path = paths.get(s.departmentId as string)!;
        const key = searchKey(s.id as string, s.name as string, s.address as string);
        return {
          values: [s.id, s.name, s.departmentId, path, s.level, s.address, key, s.url, s.subUrl, s.codec, s.lat, s.lon, tags.length ? `|${tags.join('|')}|` : '', s.enabled ? 1 : 0, now, now],
          doc: searchDocument(key, path),
        };
      });
      const insert = store.db.prepare(`INSERT INTO sources (id, name, department_id, dept_path, level, address, search_key, url, sub_url,
        protocol, credential_id, codec, lat, lon, tags, enabled, version, created_at, updated_at)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'rtsp', NULL, ?, ?, ?, ?, ?, 1, ?, ?)`);
      const index = store.db.prepare(`INSERT INTO sources_search (rowid, doc) VALUES (?, ?)`);
      const t0 = performance.now();
      store.db.transaction(() => {
        for (const r of rows) {
          const { lastInsertRowid } = insert.run(...r.values);
          if (withIndex) index.run(lastInsertRowid, r.doc);
        }
      })();
      return performance.now() - t0;
    } finally {
      await store.close();
    }
  };
  return { withIndex: await time(true), rowsOnly: await time(false) };
}

// ---- PostgreSQL --------------------------------------------------------------------------------

/** A new database on the server of `adminUrl`; returns its URL and a drop. */
async function pgDatabase(adminUrl: string, prefix: string): Promise<{ url: string; drop: () => Promise<void> }> {
  return createDatabase(adminUrl, `${prefix}_${randomBytes(5).toString('hex')}`);
}

/**
 * The same rows straight into PostgreSQL: the store's schema (its search-term triggers included),
 * one transaction of 1,000-row INSERTs, every value computed before the timer.
 */
async function pgRaw(adminUrl: string, departments: CityDepartment[], sources: Record<string, unknown>[]): Promise<number> {
  const db = await pgDatabase(adminUrl, 'wg_bench_raw');
  try {
    const store = await PgStore.open({ url: db.url, poolSize: 2, connectTimeoutMs: 5_000, statementTimeoutMs: 600_000, log: { warn: () => undefined } });
    try {
      const now = Date.now();
      const paths = new Map<string, string>([['root', '/root/']]);
      await store.departments.create({ id: 'root', name: 'All departments', parentId: null, level: 'national', path: '/root/' }, now);
      for (const d of departments) {
        await store.departments.create(d, now);
        paths.set(d.id, d.path);
      }
      const COLUMNS = 15;
      const batches: unknown[][] = [];
      for (let i = 0; i < sources.length; i += 1_000) {
        batches.push(
          sources.slice(i, i + 1_000).flatMap((s) => {
            const tags = s.tags as string[];
            return [s.id, s.name, s.departmentId, paths.get(s.departmentId as string)!, s.level, s.address, searchKey(s.id as string, s.name as string, s.address as string),
              s.url, s.subUrl ?? null, s.codec, s.lat ?? null, s.lon ?? null, tags.length ? `|${tags.join('|')}|` : '', s.enabled !== false, now];
          }),
        );
      }
      const statement = (rows: number) =>
        `INSERT INTO sources (id, name, department_id, dept_path, level, address, search_key, url, sub_url, codec, lat, lon, tags, enabled, created_at,
          protocol, version, updated_at) VALUES ` +
        Array.from({ length: rows }, (_, r) => `(${Array.from({ length: COLUMNS }, (_, c) => `$${r * COLUMNS + c + 1}`).join(', ')}, 'rtsp', 1, $${r * COLUMNS + COLUMNS})`).join(', ');
      const t0 = performance.now();
      await store.db.tx(async (tx) => {
        for (const values of batches) await tx.exec(statement(values.length / COLUMNS), values);
      });
      return performance.now() - t0;
    } finally {
      await store.close();
    }
  } finally {
    await db.drop();
  }
}

type Kind = 'search2' | 'search3' | 'searchDigits';

/** The queries of the latency phase, made from the generated city (searches for text that exists, and some that does not). */
function workload({ sources, departments }: ReturnType<typeof generateCity>) {
  const rnd = prng(7);
  const pick = <T>(list: readonly T[]): T => list[Math.floor(rnd() * list.length)]!;
  const han = /^\p{Script=Han}+$/u;
  const windowOf = (len: number): string => {
    for (;;) {
      const s = pick(sources);
      const text = [...String(rnd() < 0.5 ? s.name : s.address)];
      const at = Math.floor(rnd() * (text.length - len + 1));
      const w = text.slice(at, at + len).join('');
      if (han.test(w)) return w;
    }
  };
  const FIXED_2 = ['人民', '解放', '中山', '东城', '高新', '青山', '球机', '医院', '广场', '隧道'];
  const FIXED_3 = ['解放路', '人民路', '中山路', '江滨大道', '环城北路', '东城区', '临港区', '江北县', '交叉口', '学校门口', '地铁站'];
  const searches: { kind: Kind; q: string }[] = [];
  for (let i = 0; i < QUERIES_PER_KIND + WARMUP; i++) {
    const r = i % 5;
    if (r < 2) searches.push({ kind: 'search2', q: r === 0 ? pick(FIXED_2) : windowOf(2) });
    else if (r < 4) searches.push({ kind: 'search3', q: r === 2 ? pick(FIXED_3) : windowOf(3 + Math.floor(rnd() * 2)) });
    else searches.push({ kind: 'searchDigits', q: String(pick(sources).id).slice(0, 10) });
  }
  const depIds = departments.map((d) => d.id);
  const bureaus = departments.filter((d) => d.level === 'city' && d.parentId === 'c3201').map((d) => d.id);
  // Department pages: a random department each round, chosen now.
  const departmentPages = searches.map(() => pick(depIds));
  return { searches, departmentPages, bureaus };
}

// ---- the run --------------------------------------------------------------------------------

async function run(engine: Engine): Promise<Record<string, unknown>> {
  const database = engine.kind === 'postgres' ? await pgDatabase(engine.url, 'wg_bench') : null;
  try {
    return await measure(engine, database ? { WALLGATE_STORE_ENGINE: 'postgres', WALLGATE_STORE_POSTGRES_URL: database.url } : {});
  } finally {
    await database?.drop();
  }
}

async function measure(engine: Engine, storeEnv: Record<string, string>): Promise<Record<string, unknown>> {
  log(`generating a city of ${ROWS} sources (store: ${engine.kind})`);
  let city: ReturnType<typeof generateCity> | null = generateCity(ROWS);
  let body: Uint8Array | null = new TextEncoder().encode(city.sources.map((s) => JSON.stringify(s)).join('\n') + '\n');
  const dataDir = tempDir('wallgate-bench-data-');

  log('starting the gateway');
  let gw = await startGateway(dataDir, storeEnv);
  base = gw.base;
  if (!gw.adminPassword) throw new Error('the gateway printed no admin password (not a fresh data dir?)');
  const rssIdle = procMb(gw.pid);
  const login = await api('POST', '/api/auth/login', { username: 'admin', password: gw.adminPassword });
  if (login.status !== 200 || typeof login.json?.token !== 'string') throw new Error(`login: ${login.status} ${login.text}`);
  token = login.json.token;

  for (const d of city.departments) {
    const r = await api('POST', '/api/departments', { id: d.id, name: d.name, parentId: d.parentId, level: d.level });
    if (r.status !== 201 && r.status !== 409) throw new Error(`department ${d.id}: ${r.status} ${r.text}`);
  }
  log(`${city.departments.length} departments created; importing ${ROWS} rows (${(body.length / 1048576).toFixed(1)} MiB NDJSON)`);

  const t0 = performance.now();
  const imp = await api('POST', '/api/sources/import?mode=all-or-nothing', body, 'application/x-ndjson');
  const bodyMib = round(body.length / 1048576, 1);
  body = null; // 27 MiB less for the client's garbage collector to walk during the latency phase
  const importMs = performance.now() - t0;
  const report = imp.json?.report ?? imp.json;
  if (imp.status !== 200 || report?.created !== ROWS) {
    log(`import failed: HTTP ${imp.status}, created ${report?.created}, rejected ${report?.rejected}`);
    log(`first errors: ${JSON.stringify(report?.errors?.slice(0, 10) ?? imp.text.slice(0, 2000))}`);
    await stopGateway(gw);
    throw new Error(`the import failed: HTTP ${imp.status}`);
  }
  const rssAfterImport = procMb(gw.pid);
  await sleep(200);
  const importServerMs = serverTimes.find((t) => t.url.startsWith('/api/sources/import'))?.ms ?? NaN;
  const rssPeakImport = procMb(gw.pid, 'VmHWM');
  log(`import: ${Math.round(importMs)} ms, RSS ${rssAfterImport} MiB (peak ${rssPeakImport})`);

  log(`raw ${engine.kind} insert of the same rows`);
  const raw = engine.kind === 'sqlite' ? await sqliteRaw(city.departments, city.sources) : null;
  const rawMs = raw ? raw.withIndex : await pgRaw((engine as { url: string }).url, city.departments, city.sources);
  log(`raw: ${Math.round(rawMs)} ms${raw ? ` (rows only ${Math.round(raw.rowsOnly)} ms)` : ''}`);

  log('restarting the gateway');
  await stopGateway(gw);
  gw = await startGateway(dataDir, storeEnv);
  base = gw.base;
  const rssRestart = procMb(gw.pid);

  // ---- the query workload ----
  const { searches, departmentPages, bureaus } = workload(city);
  // The queries are made; the city goes, so the client's collector has little to walk while it times.
  city = null;
  (globalThis as { gc?: () => void }).gc?.();
  let allCursor: string | null = null;
  let bureauCursor: string | null = null;
  let bureauIndex = 0;
  const cursorPage = async (filtered: boolean) => {
    const cursor = filtered ? bureauCursor : allCursor;
    const qs = new URLSearchParams({ limit: String(PAGE) });
    if (filtered) qs.set('departmentId', bureaus[bureauIndex % bureaus.length]!);
    if (cursor) qs.set('cursor', cursor);
    const { ms, json } = await timedGet(`/api/sources?${qs}`);
    if (filtered) {
      bureauCursor = json.nextCursor;
      if (!bureauCursor) bureauIndex++;
    } else allCursor = json.nextCursor;
    return ms;
  };

  const samples: Record<Kind | 'department' | 'cursorAll' | 'cursorBureau', number[]> = {
    search2: [], search3: [], searchDigits: [], department: [], cursorAll: [], cursorBureau: [],
  };
  let hits = 0;
  const floor: number[] = [];
  const total = QUERIES_PER_KIND + WARMUP;
  log(`query workload: ${WARMUP} warm-up rounds, then ${QUERIES_PER_KIND} each of search, department page, cursor page`);
  for (let i = 0; i < total; i++) {
    const warm = i < WARMUP;
    if (i === WARMUP) {
      // The floor under every figure: fastify, loopback and the client, with no work behind it.
      for (let k = 0; k < 200; k++) floor.push((await timedGet('/healthz')).ms);
      await sleep(200);
      serverTimes.length = 0;
    }
    const s = searches[i]!;
    const sr = await timedGet(`/api/sources?${new URLSearchParams({ q: s.q, limit: String(PAGE) })}`);
    if (sr.json.items.length) hits++;
    const dep = await timedGet(`/api/sources?${new URLSearchParams({ departmentId: departmentPages[i]!, limit: String(PAGE) })}`);
    const filtered = i % 2 === 1;
    const cur = await cursorPage(filtered);
    if (warm) continue;
    samples[s.kind].push(sr.ms);
    samples.department.push(dep.ms);
    samples[filtered ? 'cursorBureau' : 'cursorAll'].push(cur);
  }
  const rss = procMb(gw.pid);
  const rssPeak = procMb(gw.pid, 'VmHWM');
  await sleep(200);
  await stopGateway(gw);

  const search = [...samples.search2, ...samples.search3, ...samples.searchDigits];
  const pages = [...samples.department, ...samples.cursorAll, ...samples.cursorBureau];
  const cursor = [...samples.cursorAll, ...samples.cursorBureau];
  const figures = {
    import_ms: Math.round(importMs),
    [engine.kind === 'sqlite' ? 'sqlite_raw_ms' : 'postgres_raw_ms']: Math.round(rawMs),
    import_ratio: round(importMs / rawMs),
    search_p95_ms: pct(search, 95),
    page_p95_ms: pct(pages, 95),
    rss_mb: rss,
  };
  const result = {
    ...figures,
    engine: engine.kind,
    rows: ROWS,
    cores: cpus().length,
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    import_body_mib: bodyMib,
    import_rows_per_s: Math.round(ROWS / (importMs / 1000)),
    import_server_ms: Math.round(importServerMs),
    ...(raw
      ? {
          sqlite_raw_rows_only_ms: Math.round(raw.rowsOnly),
          sqlite_raw_note:
            'same rows and their search-index rows in one transaction with prepared INSERTs (same schema and indexes; no parsing, validation, credentials, search terms or HTTP)',
        }
      : {
          postgres_raw_note:
            "same rows in one transaction of 1,000-row INSERTs into the store's schema (its indexes and search-term triggers; no parsing, validation, credentials or HTTP)",
        }),
    search_p50_ms: pct(search, 50),
    search_2char_p95_ms: pct(samples.search2, 95),
    search_3plus_p95_ms: pct(samples.search3, 95),
    search_digits_p95_ms: pct(samples.searchDigits, 95),
    search_max_ms: pct(search, 100),
    search_hit_ratio: round(hits / total),
    page_p50_ms: pct(pages, 50),
    department_p95_ms: pct(samples.department, 95),
    cursor_p95_ms: pct(cursor, 95),
    cursor_all_p95_ms: pct(samples.cursorAll, 95),
    cursor_bureau_p95_ms: pct(samples.cursorBureau, 95),
    page_max_ms: pct(pages, 100),
    http_floor_p50_ms: pct(floor, 50),
    http_floor_p95_ms: pct(floor, 95),
    http_floor_note: 'GET /healthz over the same keep-alive connection: the per-request cost with no registry work',
    client: 'node:http keep-alive, one connection, sequential requests',
    queries: { search: search.length, department: samples.department.length, cursor: cursor.length, warmup_rounds: WARMUP, page_size: PAGE },
    rss_idle_mb: rssIdle,
    rss_after_import_mb: rssAfterImport,
    rss_peak_import_mb: rssPeakImport,
    rss_after_restart_mb: rssRestart,
    rss_peak_mb: rssPeak,
    rss_note: 'MiB from /proc/<pid>/status of the gateway child (node dist/main.js, log level info)',
    targets: TARGETS,
    pass: {
      import_ratio: figures.import_ratio <= TARGETS.import_ratio,
      search_p95_ms: figures.search_p95_ms <= TARGETS.search_p95_ms,
      page_p95_ms: figures.page_p95_ms <= TARGETS.page_p95_ms,
      rss_mb: figures.rss_mb <= TARGETS.rss_mb,
    },
  };
  return result;
}

/** The PostgreSQL run for another bench: `adminUrl` may create databases; its own is dropped after. */
export function registryOnPostgres(adminUrl: string): Promise<Record<string, unknown> & { search_p95_ms: number }> {
  return run({ kind: 'postgres', url: adminUrl }) as Promise<Record<string, unknown> & { search_p95_ms: number }>;
}

function engineFromArgs(argv: string[]): Engine {
  const at = argv.indexOf('--engine');
  const kind = at >= 0 ? argv[at + 1] : 'sqlite';
  if (kind === 'sqlite') return { kind };
  if (kind !== 'postgres') throw new Error(`--engine ${kind}: sqlite or postgres`);
  const url = process.env.WALLGATE_BENCH_PG_URL || process.env.WALLGATE_TEST_PG_URL;
  if (!url) throw new Error('--engine postgres needs WALLGATE_BENCH_PG_URL (or WALLGATE_TEST_PG_URL): a PostgreSQL URL that may create databases');
  return { kind, url };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const guard = installHarness(GUARD_MS);
  Promise.resolve()
    .then(() => run(engineFromArgs(process.argv.slice(2))))
    .then((result) => process.stdout.write(JSON.stringify(result) + '\n'))
    .catch((err) => {
      log(`failed: ${(err as Error).stack ?? err}`);
      process.exitCode = 1;
    })
    .finally(() => {
      clearTimeout(guard);
      cleanup();
    });
}
