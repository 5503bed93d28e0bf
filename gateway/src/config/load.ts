import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { Kind, type TSchema, type TObject } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { ConfigError, type FieldIssue } from '../errors.js';
import { parseCidr } from '../lib/cidr.js';
import { configSchema, type Config } from './schema.js';

export const ENV_PREFIX = 'WALLGATE_';
/** Environment variables that are not config keys but choose where config comes from. */
const ENV_NON_KEYS = new Set(['WALLGATE_CONFIG']);
/** The test suite's own variables (the cluster tests' PostgreSQL and Redis), which every gateway a test starts inherits. */
const ENV_TEST_PREFIX = 'WALLGATE_TEST_';

export function defaultConfig(): Config {
  return Value.Default(configSchema, {}) as Config;
}

/** WALLGATE_ + path in SCREAMING_SNAKE_CASE: registry.importMaxRows → WALLGATE_REGISTRY_IMPORT_MAX_ROWS. */
export function envName(path: string[]): string {
  return ENV_PREFIX + path.map((p) => p.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase()).join('_');
}

interface Leaf {
  path: string[];
  schema: TSchema;
}

function leaves(schema: TSchema, path: string[] = []): Leaf[] {
  if (schema[Kind] === 'Object') {
    return Object.entries((schema as TObject).properties).flatMap(([k, s]) => leaves(s, [...path, k]));
  }
  return [{ path, schema }];
}

function parseEnvValue(raw: string, schema: TSchema, name: string): unknown {
  switch (schema[Kind]) {
    case 'Integer':
    case 'Number':
      // Keep what was typed when it is not a number, so the error shows it.
      return raw.trim() === '' || Number.isNaN(Number(raw)) ? raw : Number(raw);
    case 'Boolean':
      if (/^(true|1|yes|on)$/i.test(raw)) return true;
      if (/^(false|0|no|off)$/i.test(raw)) return false;
      return raw;
    case 'Array':
      if (raw.trim().startsWith('[')) {
        try {
          return JSON.parse(raw);
        } catch {
          throw new ConfigError([{ field: name, message: 'expected a JSON array or a comma-separated list' }]);
        }
      }
      return raw.split(',').map((s) => s.trim()).filter(Boolean);
    default:
      return raw;
  }
}

function setPath(target: Record<string, unknown>, path: string[], value: unknown): void {
  let node = target;
  for (const key of path.slice(0, -1)) {
    const next = node[key];
    if (typeof next !== 'object' || next === null || Array.isArray(next)) node[key] = {};
    node = node[key] as Record<string, unknown>;
  }
  node[path[path.length - 1]!] = value;
}

function describeExpected(error: { message: string; schema: TSchema }): string {
  const s = error.schema;
  if (s.anyOf) return `expected one of ${(s.anyOf as TSchema[]).map((o) => JSON.stringify(o.const)).join(', ')}`;
  return error.message.toLowerCase().replace(/^expected/, 'expected');
}

function pointerToField(pointer: string, prefix: string): string {
  const parts = pointer.split('/').filter(Boolean);
  const dotted = parts.map((p, i) => (/^\d+$/.test(p) ? `[${p}]` : (i ? '.' : '') + p)).join('');
  return prefix + dotted;
}

/** Cross-field and format checks the schema cannot express; each names its key. */
function semanticIssues(config: Config): FieldIssue[] {
  const issues: FieldIssue[] = [];
  for (const list of ['allow', 'deny'] as const) {
    config.registry.networks[list].forEach((cidr, i) => {
      try {
        parseCidr(cidr);
      } catch (err) {
        issues.push({ field: `registry.networks.${list}[${i}]`, message: (err as Error).message });
      }
    });
  }
  for (const key of ['tokenKey', 'credentialKey'] as const) {
    const v = config.secrets[key];
    if (v && Buffer.from(v, 'base64').length < 32) {
      issues.push({ field: `secrets.${key}`, message: 'expected base64 of at least 32 bytes' });
    }
  }
  const rtc = config.streams.webrtc;
  if ((rtc.portMin === 0) !== (rtc.portMax === 0) || rtc.portMin > rtc.portMax || (rtc.portMin !== 0 && rtc.portMin === rtc.portMax)) {
    issues.push({ field: 'streams.webrtc.portMax', message: 'give both portMin and portMax, with portMin below portMax, or neither' });
  }
  if (rtc.bindAddress && isIP(rtc.bindAddress) !== 4) {
    issues.push({ field: 'streams.webrtc.bindAddress', message: 'expected an IPv4 address' });
  }
  rtc.announcedAddresses.forEach((address, i) => {
    if (!isIP(address)) issues.push({ field: `streams.webrtc.announcedAddresses[${i}]`, message: 'expected an IP address' });
  });
  const tours = config.control.tours;
  if (tours.minDwellSec > tours.maxDwellSec) issues.push({ field: 'control.tours.maxDwellSec', message: 'must be at least control.tours.minDwellSec' });
  if (config.store.engine === 'postgres' && !config.store.postgres.url) {
    issues.push({ field: 'store.postgres.url', message: 'is required when store.engine is postgres' });
  }
  if (config.cluster.enabled && config.store.engine !== 'postgres') {
    issues.push({ field: 'store.engine', message: 'must be postgres when cluster.enabled (the nodes share one database)' });
  }
  if (config.cluster.enabled && config.cluster.heartbeatMs * 3 > config.cluster.leaseMs) {
    issues.push({ field: 'cluster.heartbeatMs', message: 'must be at most a third of cluster.leaseMs, so a lease is renewed twice before it can lapse' });
  }
  if (config.cluster.enabled && config.cluster.viewerRouting === 'relay') {
    issues.push({ field: 'cluster.viewerRouting', message: 'relay is not available yet; use redirect (HLS and WHEP get 307 to the owner, WS-FLV is proxied)' });
  }
  if (config.cluster.enabled && !config.secrets.file && (!config.secrets.tokenKey || !config.secrets.credentialKey)) {
    issues.push({
      field: 'secrets.file',
      message:
        'cluster mode needs keys every node shares: set WALLGATE_SECRETS_TOKEN_KEY and WALLGATE_SECRETS_CREDENTIAL_KEY (base64 of 32 random bytes each) to the same values on every node, or secrets.file to one file every node reads; a key generated per node would make tokens and camera passwords of one node useless on the others',
    });
  }
  if (config.jt808.autoRegister.enabled && !config.jt808.autoRegister.departmentId) {
    issues.push({ field: 'jt808.autoRegister.departmentId', message: 'is required when jt808.autoRegister.enabled (the department new vehicles go to)' });
  }
  const v = config.vehicles;
  if (v.staleAfterSec > v.trackWindowSec) issues.push({ field: 'vehicles.staleAfterSec', message: 'must not exceed vehicles.trackWindowSec' });
  if (v.offlineAfterSec * 1000 < v.subscriptions.minIntervalMs) {
    issues.push({ field: 'vehicles.offlineAfterSec', message: 'must be at least vehicles.subscriptions.minIntervalMs' });
  }
  if (config.control.rate.burst < config.control.rate.perSecond) {
    issues.push({ field: 'control.rate.burst', message: 'must be at least control.rate.perSecond' });
  }
  if (config.control.path === '/streams' || config.control.path.startsWith('/streams/')) {
    issues.push({ field: 'control.path', message: 'must not be under /streams/, where stream URLs live' });
  }
  return issues;
}

export interface LoadOptions {
  argv?: string[];
  env?: NodeJS.ProcessEnv;
}

/**
 * Defaults, then the file named by --config or WALLGATE_CONFIG, then WALLGATE_* variables.
 * Any unknown key, unknown WALLGATE_* variable or invalid value throws a ConfigError naming it.
 */
export function loadConfig({ argv = process.argv.slice(2), env = process.env }: LoadOptions = {}): Config {
  let file: string | undefined = env.WALLGATE_CONFIG;
  const flag = argv.findIndex((a) => a === '--config' || a.startsWith('--config='));
  if (flag >= 0) {
    const arg = argv[flag]!;
    file = arg.includes('=') ? arg.slice(arg.indexOf('=') + 1) : argv[flag + 1];
    if (!file) throw new ConfigError([{ field: '--config', message: 'expected a file path' }]);
  }

  let merged: Record<string, unknown> = {};
  if (file) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new ConfigError([{ field: file, message: `cannot read config file (${(err as NodeJS.ErrnoException).code})` }]);
    }
    try {
      merged = JSON.parse(text);
    } catch (err) {
      throw new ConfigError([{ field: file, message: `not valid JSON: ${(err as Error).message}` }]);
    }
    if (typeof merged !== 'object' || merged === null || Array.isArray(merged)) {
      throw new ConfigError([{ field: file, message: 'expected a JSON object at the top level' }]);
    }
  }

  const known = new Map(leaves(configSchema).map((l) => [envName(l.path), l]));
  const envIssues: FieldIssue[] = [];
  for (const [name, raw] of Object.entries(env)) {
    if (!name.startsWith(ENV_PREFIX) || ENV_NON_KEYS.has(name) || name.startsWith(ENV_TEST_PREFIX) || raw === undefined) continue;
    const leaf = known.get(name);
    if (!leaf) {
      envIssues.push({ field: name, message: 'unknown setting (see docs/configuration.md for the names)' });
      continue;
    }
    setPath(merged, leaf.path, parseEnvValue(raw, leaf.schema, name));
  }
  if (envIssues.length) throw new ConfigError(envIssues);

  const candidate = Value.Default(configSchema, structuredClone(merged));
  const schemaIssues = [...Value.Errors(configSchema, candidate)]
    // A union reports once per member plus once for itself; the member lines add nothing.
    .filter((e, i, all) => all.findIndex((o) => o.path === e.path) === i)
    .map((e) => {
      const field = pointerToField(e.path, '');
      const leaf = field && known.get(envName(field.replace(/\[\d+\]/g, '').split('.')));
      const where = leaf && env[envName(leaf.path)] !== undefined ? ` (from ${envName(leaf.path)})` : '';
      if (e.message.includes('Unexpected property')) {
        return { field: field || '(top level)', message: `unknown key${where}` };
      }
      return { field: field || '(top level)', message: `${describeExpected(e)}, got ${JSON.stringify(e.value)}${where}` };
    });
  if (schemaIssues.length) throw new ConfigError(schemaIssues);

  const config = candidate as Config;
  const more = semanticIssues(config);
  if (more.length) throw new ConfigError(more);
  return config;
}
