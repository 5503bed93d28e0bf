import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { defaultConfig, envName, loadConfig } from '../../../gateway/src/config/load.js';
import { ConfigError } from '../../../gateway/src/errors.js';
import { tempDir } from '../../helpers/gateway.js';

const root = new URL('../../../', import.meta.url).pathname;

t.test('the shipped config/default.json equals the defaults in code', async (t) => {
  t.same(JSON.parse(readFileSync(join(root, 'config/default.json'), 'utf8')), defaultConfig());
});

t.test('with nothing set, the defaults load', async (t) => {
  t.same(loadConfig({ argv: [], env: {} }), defaultConfig());
});

t.test("the test suite's own WALLGATE_TEST_* variables, which spawned gateways inherit, are not settings", async (t) => {
  t.same(loadConfig({ argv: [], env: { WALLGATE_TEST_PG_URL: 'postgres://x@127.0.0.1:1/db', WALLGATE_TEST_REDIS_URL: 'redis://127.0.0.1:1' } }), defaultConfig());
});

t.test('file then environment, environment wins', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'c.json');
  writeFileSync(file, JSON.stringify({ server: { port: 9000, host: '127.0.0.1' }, registry: { networks: { allow: ['10.0.0.0/8'] } } }));
  const c = loadConfig({ argv: ['--config', file], env: { WALLGATE_SERVER_PORT: '9100', WALLGATE_REGISTRY_NETWORKS_DENY: '10.9.0.0/16, 10.8.0.0/16' } });
  t.equal(c.server.port, 9100);
  t.equal(c.server.host, '127.0.0.1');
  t.same(c.registry.networks.allow, ['10.0.0.0/8']);
  t.same(c.registry.networks.deny, ['10.9.0.0/16', '10.8.0.0/16']);
  t.equal(c.auth.tokenTtlSec, defaultConfig().auth.tokenTtlSec, 'untouched keys keep their defaults');
  const viaEnv = loadConfig({ argv: [], env: { WALLGATE_CONFIG: file } });
  t.equal(viaEnv.server.port, 9000, 'WALLGATE_CONFIG names the file too');
  t.equal(loadConfig({ argv: [`--config=${file}`], env: {} }).server.port, 9000, '--config=FILE form');
});

t.test('env names follow the key path', async (t) => {
  t.equal(envName(['registry', 'importMaxRows']), 'WALLGATE_REGISTRY_IMPORT_MAX_ROWS');
  t.equal(envName(['dataDir']), 'WALLGATE_DATA_DIR');
});

const bad: { name: string; env?: Record<string, string>; file?: unknown; field: string; says: RegExp }[] = [
  { name: 'port not a number', env: { WALLGATE_SERVER_PORT: 'eighty' }, field: 'server.port', says: /expected integer, got "eighty" \(from WALLGATE_SERVER_PORT\)/ },
  { name: 'port out of range', file: { server: { port: 70000 } }, field: 'server.port', says: /65535/ },
  { name: 'unknown key in file', file: { server: { prot: 1 } }, field: 'server.prot', says: /unknown key/ },
  { name: 'unknown top-level key', file: { stream: {} }, field: 'stream', says: /unknown key/ },
  { name: 'unknown env variable', env: { WALLGATE_SERVER_PROT: '1' }, field: 'WALLGATE_SERVER_PROT', says: /unknown setting/ },
  { name: 'log level not in the list', env: { WALLGATE_LOG_LEVEL: 'loud' }, field: 'log.level', says: /one of "fatal"/ },
  { name: 'boolean', env: { WALLGATE_DEMO_ENABLED: 'maybe' }, field: 'demo.enabled', says: /expected boolean/ },
  { name: 'bad CIDR', file: { registry: { networks: { deny: ['10.0.0.0/8', '10.0.0/8'] } } }, field: 'registry.networks.deny[1]', says: /not a CIDR/ },
  { name: 'prefix too long', env: { WALLGATE_REGISTRY_NETWORKS_ALLOW: '10.0.0.0/33' }, field: 'registry.networks.allow[0]', says: /prefix longer/ },
  { name: 'short secret', env: { WALLGATE_SECRETS_TOKEN_KEY: 'c2hvcnQ=' }, field: 'secrets.tokenKey', says: /32 bytes/ },
  { name: 'wrong type in file', file: { registry: { networks: { allow: '10.0.0.0/8' } } }, field: 'registry.networks.allow', says: /expected array/ },
  { name: 'grace too long for a 10 s stop', file: { server: { shutdownGraceMs: 20000 } }, field: 'server.shutdownGraceMs', says: /9000/ },
  { name: 'WebRTC port range half given', file: { streams: { webrtc: { portMin: 40000 } } }, field: 'streams.webrtc.portMax', says: /portMin below portMax/ },
  { name: 'WebRTC port range reversed', file: { streams: { webrtc: { portMin: 41000, portMax: 40000 } } }, field: 'streams.webrtc.portMax', says: /portMin below portMax/ },
  { name: 'WebRTC bind address not IPv4', env: { WALLGATE_STREAMS_WEBRTC_BIND_ADDRESS: 'eth0' }, field: 'streams.webrtc.bindAddress', says: /IPv4/ },
  { name: 'tour dwell bounds reversed', file: { control: { tours: { minDwellSec: 60, maxDwellSec: 30 } } }, field: 'control.tours.maxDwellSec', says: /at least control.tours.minDwellSec/ },
  { name: 'control burst below the rate', file: { control: { rate: { perSecond: 100, burst: 10 } } }, field: 'control.rate.burst', says: /at least control.rate.perSecond/ },
  { name: 'control path under /streams', file: { control: { path: '/streams/control' } }, field: 'control.path', says: /under \/streams\// },
  { name: 'control origin with a path', file: { control: { allowedOrigins: ['https://console.example/app'] } }, field: 'control.allowedOrigins[0]', says: /expected string to match/ },
  { name: 'WebRTC announced address not an IP', file: { streams: { webrtc: { announcedAddresses: ['10.0.0.1', 'wall.example'] } } }, field: 'streams.webrtc.announcedAddresses[1]', says: /IP address/ },
  { name: 'ICE server not STUN or TURN', file: { streams: { webrtc: { iceServers: [{ urls: 'http://stun.example' }] } } }, field: 'streams.webrtc.iceServers[0].urls', says: /stun|turn/ },
  { name: 'JT/T 808 auto-registration without a department', env: { WALLGATE_JT808_AUTO_REGISTER_ENABLED: 'true' }, field: 'jt808.autoRegister.departmentId', says: /required when jt808.autoRegister.enabled/ },
  {
    name: 'cluster relay routing (not built)',
    file: { store: { engine: 'postgres', postgres: { url: 'postgres://db/wallgate' } }, cluster: { enabled: true, viewerRouting: 'relay' }, secrets: { file: '/etc/wallgate/secrets.json' } },
    field: 'cluster.viewerRouting',
    says: /relay is not available yet; use redirect/,
  },
  {
    name: 'cluster keys generated per node',
    file: { store: { engine: 'postgres', postgres: { url: 'postgres://db/wallgate' } }, cluster: { enabled: true } },
    field: 'secrets.file',
    says: /keys every node shares: set WALLGATE_SECRETS_TOKEN_KEY and WALLGATE_SECRETS_CREDENTIAL_KEY/,
  },
  { name: 'file not JSON', file: '{ nope', field: 'c.json', says: /not valid JSON/ },
];

for (const c of bad) {
  t.test(`bad config is refused and named: ${c.name}`, async (t) => {
    const argv: string[] = [];
    if (c.file !== undefined) {
      const file = join(tempDir(t), 'c.json');
      writeFileSync(file, typeof c.file === 'string' ? c.file : JSON.stringify(c.file));
      argv.push('--config', file);
    }
    let err: unknown;
    try {
      loadConfig({ argv, env: c.env ?? {} });
    } catch (e) {
      err = e;
    }
    t.type(err, ConfigError);
    const issue = (err as ConfigError).issues.find((i) => i.field === c.field || i.field.endsWith(c.field));
    t.ok(issue, `an issue names ${c.field}: ${(err as Error)?.message}`);
    t.match(issue?.message ?? '', c.says);
  });
}

t.test('a missing config file is named', async (t) => {
  t.throws(() => loadConfig({ argv: ['--config', '/nonexistent/wallgate.json'], env: {} }), /\/nonexistent\/wallgate.json: cannot read config file \(ENOENT\)/);
});

t.test('docs/configuration.md lists every key as the schema has it', async (t) => {
  const { configurationDoc } = await import('../../../gateway/src/config/doc.js');
  t.equal(readFileSync(join(root, 'docs/configuration.md'), 'utf8'), configurationDoc(), 'run npm run docs:config');
});
