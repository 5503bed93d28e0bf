import { Type, type Static, type TSchema } from '@sinclair/typebox';

/**
 * The one description of wallgate's configuration. Defaults live here, in code;
 * config/default.json is a copy of them that a test keeps equal.
 * Objects are closed (additionalProperties: false) so a mistyped key stops the start.
 */
const obj = <T extends Record<string, TSchema>>(props: T, description: string) =>
  Type.Object(props, { additionalProperties: false, default: {}, description });

const port = (def: number, description: string) =>
  Type.Integer({ minimum: 0, maximum: 65535, default: def, description });

export const configSchema = obj(
  {
    dataDir: Type.String({
      minLength: 1,
      default: './data',
      description: 'Directory for the SQLite store, generated secrets and stream scratch files.',
    }),
    server: obj(
      {
        host: Type.String({ minLength: 1, default: '0.0.0.0', description: 'Address the HTTP server binds.' }),
        port: port(8080, 'HTTP port; 0 picks a free one.'),
        trustProxy: Type.Boolean({
          default: false,
          description: 'Take the client address from X-Forwarded-For (only behind a trusted reverse proxy).',
        }),
        bodyLimitBytes: Type.Integer({ minimum: 1024, default: 1_048_576, description: 'Largest JSON body.' }),
        shutdownGraceMs: Type.Integer({
          minimum: 100,
          maximum: 9_000,
          default: 8_000,
          description: 'How long SIGTERM waits for in-flight requests before closing them.',
        }),
      },
      'HTTP server.',
    ),
    log: obj(
      {
        level: Type.Union(
          ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l)),
          { default: 'info', description: 'Log level.' },
        ),
      },
      'Logging.',
    ),
    secrets: obj(
      {
        file: Type.String({
          default: '',
          description: 'File holding generated keys (mode 0600); empty means <dataDir>/secrets.json.',
        }),
        tokenKey: Type.String({
          default: '',
          description: 'Token signing key, base64 of at least 32 bytes; empty means read or generate the secrets file.',
        }),
        credentialKey: Type.String({
          default: '',
          description: 'Camera credential encryption key, base64 of 32 bytes; empty means read or generate the secrets file.',
        }),
      },
      'Keys. Prefer WALLGATE_SECRETS_* environment variables or the generated file over putting keys in a config file.',
    ),
    auth: obj(
      {
        tokenTtlSec: Type.Integer({ minimum: 60, maximum: 604_800, default: 43_200, description: 'Login token lifetime.' }),
        passwordMinLength: Type.Integer({ minimum: 8, maximum: 128, default: 10, description: 'Shortest user password.' }),
        loginMaxFailures: Type.Integer({
          minimum: 1,
          default: 5,
          description: 'Failed logins for one user name before it is locked for loginLockoutSec.',
        }),
        loginLockoutSec: Type.Integer({ minimum: 1, default: 60, description: 'Lockout after too many failed logins.' }),
        bootstrapAdmin: Type.String({
          minLength: 1,
          default: 'admin',
          description: 'Name of the admin created, with a random password printed once, on a first start.',
        }),
      },
      'Accounts and tokens.',
    ),
    registry: obj(
      {
        networks: obj(
          {
            allow: Type.Array(Type.String(), {
              default: [],
              description: 'CIDRs camera hosts may be in; empty allows every network not denied.',
            }),
            deny: Type.Array(Type.String(), {
              default: ['0.0.0.0/8', '::/128', '169.254.0.0/16', 'fe80::/10', '224.0.0.0/4', 'ff00::/8'],
              description: 'CIDRs camera hosts may never be in ("this host" addresses; link-local covers cloud metadata services).',
            }),
          },
          'Networks a camera URL may point at, checked at registration and again when a stream resolves its host.',
        ),
        resolveTimeoutMs: Type.Integer({
          minimum: 50,
          maximum: 10_000,
          default: 1_000,
          description: 'DNS lookup budget when a network allow-list needs a host name resolved.',
        }),
        importMaxRows: Type.Integer({ minimum: 1, default: 200_000, description: 'Most rows one import request may carry.' }),
        importMaxBytes: Type.Integer({ minimum: 1024, default: 268_435_456, description: 'Largest import body.' }),
        pageSizeMax: Type.Integer({ minimum: 1, maximum: 5_000, default: 500, description: 'Largest list page.' }),
      },
      'Camera source registry.',
    ),
    demo: obj(
      {
        enabled: Type.Boolean({ default: false, description: 'Seed a demo city into an empty store at start.' }),
        sources: Type.Integer({ minimum: 0, maximum: 200_000, default: 2_000, description: 'Demo city size.' }),
      },
      'Demo mode for a first look.',
    ),
  },
  'wallgate configuration',
);

export type Config = Static<typeof configSchema>;
