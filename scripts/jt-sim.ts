/**
 * The demo fleet's onboard terminals: each vehicle of gateway/src/vehicles/demo.ts (same SIMs,
 * plates and terminal ids) connects to a JT/T 808 server, registers or authenticates, drives its
 * route reporting positions, raises alarms (ADAS, DSM, SOS, over-speed, video loss), and streams
 * its cameras over JT/T 1078 when the platform asks (scripts/sim/jt-terminal.ts).
 *
 *   node --import tsx scripts/jt-sim.ts --server 127.0.0.1:7611 --vehicles 826
 *
 * Options: --interval 5 (seconds between positions), --alarms-per-minute 2 (across the fleet),
 * --edition 2013|2019|mixed (mixed: one in three a 2019 terminal), --media tcp|udp, --clip and
 * --sub-clip (the channels' main and sub streams), --auth-codes FILE (the codes the platform gave,
 * kept between runs as a real terminal keeps them, so a restart only authenticates),
 * --reconnect-sec 5 (a dropped link is retried after about this long).
 * Prints one JSON line once every terminal has tried to connect, then one a minute.
 * SIGINT/SIGTERM close the links and exit.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { generateFleet } from '../gateway/src/vehicles/demo.js';
import { cliTool } from './sim/cli.js';
import { CLIP_KINDS, ensureClip, type ClipKind } from './sim/clips.js';
import { JtSimFleet } from './sim/jt-terminal.js';

const cli = cliTool('jt-sim');
// Annotated, so TypeScript narrows after a call to it.
const fail: (msg: string) => never = cli.fail;
const { intOption } = cli;

const values = cli.options({
  server: { type: 'string', default: '127.0.0.1:7611' },
  vehicles: { type: 'string', default: '826' },
  interval: { type: 'string', default: '5' },
  'alarms-per-minute': { type: 'string', default: '2' },
  edition: { type: 'string', default: 'mixed' },
  media: { type: 'string', default: 'tcp' },
  clip: { type: 'string', default: 'h264-720p-1s' },
  'sub-clip': { type: 'string', default: 'h264-360p-1s' },
  'auth-codes': { type: 'string' },
  'reconnect-sec': { type: 'string', default: '5' },
});

const serverMatch = /^(.+):(\d+)$/.exec(values.server);
if (!serverMatch) fail('--server must be host:port');
const host = serverMatch[1]!.replace(/^\[|\]$/g, '');
const port = intOption('server', serverMatch[2]!, 1, 65535);
const count = intOption('vehicles', values.vehicles, 1, 100_000);
const intervalSec = Number(values.interval);
if (!(intervalSec >= 0.2 && intervalSec <= 600)) fail('--interval must be 0.2 to 600 seconds');
const alarmsPerMinute = Number(values['alarms-per-minute']);
if (!(alarmsPerMinute >= 0 && alarmsPerMinute <= 10_000)) fail('--alarms-per-minute must be 0 to 10000');
const edition = values.edition;
if (edition !== '2013' && edition !== '2019' && edition !== 'mixed') fail('--edition must be 2013, 2019 or mixed');
const media = values.media;
if (media !== 'tcp' && media !== 'udp') fail('--media must be tcp or udp');
for (const flag of ['clip', 'sub-clip'] as const) if (!CLIP_KINDS.includes(values[flag] as ClipKind)) fail(`--${flag} must be one of ${CLIP_KINDS.join(', ')}`);
const reconnectMs = intOption('reconnect-sec', values['reconnect-sec'], 1, 3600) * 1000;
const codesFile = values['auth-codes'];

let authCodes: Record<string, string> = {};
if (codesFile && existsSync(codesFile)) {
  try {
    authCodes = JSON.parse(readFileSync(codesFile, 'utf8')) as Record<string, string>;
  } catch (err) {
    fail(`cannot read ${codesFile}: ${(err as Error).message}`);
  }
}

// Encode before connecting, so the first 0x9101 is answered with video at once.
await ensureClip(values.clip as ClipKind);
await ensureClip(values['sub-clip'] as ClipKind);

const fleet = new JtSimFleet({
  host,
  port,
  vehicles: generateFleet(count),
  edition,
  authCodes,
  clip: values.clip as ClipKind,
  subClip: values['sub-clip'] as ClipKind,
  mediaTransport: media,
  positionIntervalMs: intervalSec * 1000,
  alarmsPerMinute,
  reconnectMs,
  log: (msg) => process.stderr.write(`jt-sim: ${msg}\n`),
});

const saveCodes = () => {
  if (codesFile) writeFileSync(codesFile, JSON.stringify(fleet.authCodes()) + '\n', { mode: 0o600 });
};
const status = () => {
  const media = fleet.terminals.reduce((n, t) => n + t.mediaInfo().length, 0);
  return { jtSim: { terminals: fleet.terminals.length, online: fleet.online, media, ...fleet.stats } };
};

let stopping = false;
async function stop(): Promise<void> {
  if (stopping) return;
  stopping = true;
  clearInterval(report);
  await fleet.close();
  saveCodes();
  process.exit(0);
}
process.on('SIGINT', () => void stop());
process.on('SIGTERM', () => void stop());
const report = setInterval(() => {
  saveCodes();
  process.stdout.write(JSON.stringify(status()) + '\n');
}, 60_000);

process.stdout.write(JSON.stringify({ jtSim: { terminals: count, server: `${host}:${port}`, edition, media, intervalSec, alarmsPerMinute } }) + '\n');
await fleet.start();
if (!stopping) {
  saveCodes();
  process.stdout.write(JSON.stringify(status()) + '\n');
}
