/**
 * Simulated RTSP cameras for the demo and manual tests.
 *
 *   node --import tsx scripts/camera-sim.ts --cameras 40 --clip mixed
 *
 * Prints one JSON line once the cameras are ready:
 *   {"rtsp":"rtsp://127.0.0.1:8554","cameras":["cam001",...],"control":"http://127.0.0.1:8555"}
 * Control API: POST /cameras/<name>/fault (JSON Fault body), DELETE /cameras/<name>/fault, GET /stats.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { cliTool } from './sim/cli.js';
import { CLIP_KINDS, ensureClip, type ClipKind } from './sim/clips.js';
import { CameraSimulator, type Fault } from './sim/rtsp-server.js';

const MAX_BODY_BYTES = 4096;

const cli = cliTool('camera-sim');
const fail: (msg: string) => never = cli.fail;
const { intOption } = cli;

const values = cli.options({
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string', default: '8554' },
    cameras: { type: 'string', default: '40' },
    clip: { type: 'string', default: 'h264-720p-1s' },
    'control-port': { type: 'string', default: '8555' },
  });

const port = intOption('port', values.port, 0, 65535);
const controlPort = intOption('control-port', values['control-port'], 0, 65535);
const count = intOption('cameras', values.cameras, 0, 100_000);
const clipArg = values.clip;
if (clipArg !== 'mixed' && !CLIP_KINDS.includes(clipArg as ClipKind)) fail(`--clip must be mixed or one of ${CLIP_KINDS.join(', ')}`);
const clipFor = (i: number): ClipKind => (clipArg === 'mixed' ? CLIP_KINDS[i % CLIP_KINDS.length]! : (clipArg as ClipKind));

const width = Math.max(3, String(count).length);
const names = Array.from({ length: count }, (_, i) => `cam${String(i + 1).padStart(width, '0')}`);
const kinds = [...new Set(names.map((_, i) => clipFor(i)))];
// Encode up front so "ready" means the first DESCRIBE is answered at once.
await Promise.all(kinds.map((k) => ensureClip(k)));

const sim = await CameraSimulator.start({ host: values.host, port });
names.forEach((name, i) => sim.addCamera(name, { clip: clipFor(i) }));

const control = createServer((req, res) => {
  handleControl(req, res).catch((err: unknown) => reply(res, 500, { error: String(err) }));
});
await new Promise<void>((resolve, reject) => {
  control.once('error', reject);
  control.listen(controlPort, values.host, () => resolve());
});

const hostForUrl = values.host.includes(':') ? `[${values.host}]` : values.host;
process.stdout.write(
  `${JSON.stringify({
    rtsp: `rtsp://${hostForUrl}:${sim.port}`,
    cameras: names,
    control: `http://${hostForUrl}:${(control.address() as AddressInfo).port}`,
  })}\n`,
);

let stopping = false;
async function stop(): Promise<void> {
  if (stopping) return;
  stopping = true;
  control.closeAllConnections();
  await Promise.all([sim.close(), new Promise<void>((resolve) => control.close(() => resolve()))]);
}
process.on('SIGINT', () => void stop());
process.on('SIGTERM', () => void stop());

async function handleControl(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const path = (req.url ?? '/').split('?')[0]!;
  if (path === '/stats' && req.method === 'GET') return reply(res, 200, sim.stats());
  const m = /^\/cameras\/([^/]+)\/fault$/.exec(path);
  if (!m) return reply(res, 404, { error: 'not found' });
  const name = decodeURIComponent(m[1]!);
  if (!names.includes(name)) return reply(res, 404, { error: `unknown camera ${name}` });
  if (req.method === 'DELETE') {
    sim.clearFault(name);
    return reply(res, 204, null);
  }
  if (req.method !== 'POST') return reply(res, 405, { error: 'use POST or DELETE' });
  const fault = parseFault(await readBody(req));
  if (typeof fault === 'string') return reply(res, 400, { error: fault });
  sim.setFault(name, fault);
  return reply(res, 204, null);
}

function reply(res: ServerResponse, status: number, body: unknown): void {
  if (body === null) {
    res.writeHead(status).end();
    return;
  }
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }).end(text);
}

async function readBody(req: IncomingMessage): Promise<string> {
  let body = '';
  for await (const chunk of req) {
    body += String(chunk);
    if (body.length > MAX_BODY_BYTES) throw new Error('body too large');
  }
  return body;
}

/** A Fault from untrusted JSON, or the reason it is not one. */
function parseFault(text: string): Fault | string {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return 'body is not JSON';
  }
  if (typeof v !== 'object' || v === null) return 'body must be a JSON object';
  const o = v as Record<string, unknown>;
  const num = (k: string) => (typeof o[k] === 'number' && Number.isFinite(o[k]) ? o[k] : null);
  switch (o.kind) {
    case 'refuse':
    case 'stall':
      return { kind: o.kind };
    case 'drop': {
      const forMs = num('forMs');
      return forMs !== null && forMs >= 0 ? { kind: 'drop', forMs } : 'drop needs forMs >= 0';
    }
    case 'jump': {
      const ms = num('ms');
      return ms !== null ? { kind: 'jump', ms } : 'jump needs ms';
    }
    case 'oversized-headers': {
      const bytes = num('bytes');
      return bytes !== null && Number.isInteger(bytes) && bytes >= 0 && bytes <= 1 << 20
        ? { kind: 'oversized-headers', bytes }
        : 'oversized-headers needs an integer bytes in 0..1048576';
    }
    default:
      return 'kind must be refuse, stall, drop, jump or oversized-headers';
  }
}
