/**
 * Simulated GB/T 28181 devices and a department's lower platform, registering to a SIP server.
 *
 *   node --import tsx scripts/gb-sim.ts --server 127.0.0.1:5060 --platform 34020100002000000001 --channels 300 --live 30
 *   node --import tsx scripts/gb-sim.ts --server 127.0.0.1:5060 --devices 20 --transport tcp
 *
 * The password comes from GB_SIM_PASSWORD (or --password, which a process list shows: for manual
 * tries only). Registration that fails (the gateway not admitting the id yet, say) is retried every
 * --retry-sec. Prints one JSON line once every device has registered:
 *   {"registered":21,"platform":"3402…","channels":300,"live":30,"devices":["3402…",…]}
 * SIGINT/SIGTERM unregister and exit.
 */
import { cliTool } from './sim/cli.js';
import { CLIP_KINDS, ensureClip, type ClipKind } from './sim/clips.js';
import { GbSimDevice, GbSimPlatform, type GbSimDeviceOptions } from './sim/gb-device.js';

const cli = cliTool('gb-sim');
const fail: (msg: string) => never = cli.fail;
const { intOption } = cli;

const values = cli.options({
    server: { type: 'string', default: '127.0.0.1:5060' },
    'server-id': { type: 'string', default: '34020000002000000001' },
    platform: { type: 'string' },
    channels: { type: 'string', default: '300' },
    live: { type: 'string', default: '30' },
    devices: { type: 'string', default: '0' },
    'device-prefix': { type: 'string', default: '3402000000' },
    transport: { type: 'string', default: 'udp' },
    password: { type: 'string' },
    host: { type: 'string', default: '127.0.0.1' },
    clip: { type: 'string', default: 'h264-720p-1s' },
    'page-size': { type: 'string', default: '20' },
    'keepalive-sec': { type: 'string', default: '60' },
    'expires-sec': { type: 'string', default: '3600' },
    'retry-sec': { type: 'string', default: '5' },
  });

const serverMatch = /^(.+):(\d+)$/.exec(values.server);
if (!serverMatch) fail('--server must be host:port');
const server = { address: serverMatch[1]!.replace(/^\[|\]$/g, ''), port: intOption('server', serverMatch[2]!, 1, 65535), id: values['server-id'] };
if (!/^\d{20}$/.test(server.id)) fail('--server-id must be 20 digits');
if (values.platform !== undefined && !/^\d{20}$/.test(values.platform)) fail('--platform must be a 20-digit id');
if (!/^\d{10}$/.test(values['device-prefix'])) fail('--device-prefix must be 10 digits');
const transport = values.transport;
if (transport !== 'udp' && transport !== 'tcp') fail('--transport must be udp or tcp');
if (!CLIP_KINDS.includes(values.clip as ClipKind)) fail(`--clip must be one of ${CLIP_KINDS.join(', ')}`);
const clip = values.clip as ClipKind;
const password = process.env.GB_SIM_PASSWORD ?? values.password;
if (!password) fail('set GB_SIM_PASSWORD (or --password)');
const channels = intOption('channels', values.channels, 0, 200_000);
const live = intOption('live', values.live, 0, channels);
const deviceCount = intOption('devices', values.devices, 0, 100_000);
const retryMs = intOption('retry-sec', values['retry-sec'], 1, 3600) * 1000;
if (values.platform === undefined && deviceCount === 0) fail('give --platform ID and/or --devices N');

const common: Omit<GbSimDeviceOptions, 'id'> = {
  password,
  server,
  transport,
  host: values.host,
  clip,
  catalogPageSize: intOption('page-size', values['page-size'], 1, 10_000),
  keepaliveIntervalMs: intOption('keepalive-sec', values['keepalive-sec'], 1, 3600) * 1000,
  expiresSec: intOption('expires-sec', values['expires-sec'], 60, 86_400),
  log: (msg) => process.stderr.write(`gb-sim: ${msg}\n`),
};

const sims: GbSimDevice[] = [];
if (values.platform !== undefined) sims.push(new GbSimPlatform({ ...common, id: values.platform, channels, live }));
for (let i = 0; i < deviceCount; i++) {
  sims.push(new GbSimDevice({ ...common, id: `${values['device-prefix']}1320${String(i + 1).padStart(6, '0')}` }));
}

// Encode before registering, so the first INVITE is answered at once.
await ensureClip(clip);
await ensureClip('h264-360p-1s');

let stopping = false;
/** Registers one device, retrying while the server refuses it or does not answer (the admission may come later). */
async function startWithRetry(sim: GbSimDevice): Promise<void> {
  const report = (err: unknown) => process.stderr.write(`gb-sim: ${sim.id} did not register (${(err as Error).message}); retrying in ${retryMs / 1000} s\n`);
  try {
    await sim.start();
    return;
  } catch (err) {
    report(err);
  }
  while (!stopping) {
    await new Promise((r) => setTimeout(r, retryMs));
    if (stopping) return;
    try {
      await sim.register();
      return;
    } catch (err) {
      report(err);
    }
  }
}

// A few at a time: a thousand devices at once would be a registration storm of our own making.
const queue = [...sims.keys()];
await Promise.all(
  Array.from({ length: Math.min(50, sims.length) }, async () => {
    for (let i = queue.shift(); i !== undefined; i = queue.shift()) await startWithRetry(sims[i]!);
  }),
);
if (!stopping) {
  process.stdout.write(
    `${JSON.stringify({
      registered: sims.filter((s) => s.registered).length,
      platform: values.platform ?? null,
      channels: values.platform !== undefined ? channels : 0,
      live: values.platform !== undefined ? live : 0,
      devices: sims.filter((s) => !(s instanceof GbSimPlatform)).map((s) => s.id),
    })}\n`,
  );
}

async function stop(): Promise<void> {
  if (stopping) return;
  stopping = true;
  await Promise.all(sims.map((s) => s.stop().catch(() => {})));
  process.exit(0);
}
process.on('SIGINT', () => void stop());
process.on('SIGTERM', () => void stop());
