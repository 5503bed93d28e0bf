/**
 * A load generator for the WebRTC benchmark: holds many WHEP viewers (werift, counting packets only)
 * in one process, so the SRTP decryption of the load spreads over several processes.
 *
 *   node --import tsx scripts/bench/whep-load.ts
 *
 * Reads one JSON command a line on stdin and answers each with one JSON line on stdout carrying the
 * command's id:
 *   {"id":1,"op":"join","url":"http://…/whep/cam","tokens":["…",…],"concurrency":5,"timeoutMs":20000,"skipDecrypt":true}
 *     → {"id":1,"joined":n,"failed":n,"errors":[…],"firstKeyframeMs":[…]}
 *   A peer counts as joined once it reassembled its first keyframe (with firstPacketOnly, its first
 *   packet); with skipDecrypt it stops decrypting SRTP from then on and only counts packets and bytes.
 *   {"id":2,"op":"stats"} → {"id":2,"at":<ms>,"packets":[…],"bytes":[…],"states":["ice/connection",…],"vanished":[…]}
 *   {"id":3,"op":"vanish","index":0} → {"id":3,"ok":true,"resource":"http://…/whep/cam/<id>"}
 *   {"id":4,"op":"close"} → {"id":4,"ok":true}, then exits
 * Exits when stdin ends (its parent is gone). Diagnostics go to stderr.
 */
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { whepConnect, type WhepViewer } from '../sim/whep-client.js';

interface Command {
  id: number;
  op: 'join' | 'stats' | 'vanish' | 'close';
  url?: string;
  tokens?: string[];
  concurrency?: number;
  timeoutMs?: number;
  index?: number;
  skipDecrypt?: boolean;
  /** Count a peer as joined at its first packet rather than its first complete keyframe. */
  firstPacketOnly?: boolean;
}

const peers: WhepViewer[] = [];
const vanished = new Set<number>();
const reply = (o: object) => process.stdout.write(JSON.stringify(o) + '\n');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Resolves with the ms to the viewer's first complete keyframe (or packet), or rejects after timeoutMs. */
async function firstKeyframe(v: WhepViewer, timeoutMs: number, firstPacketOnly = false): Promise<number> {
  const t0 = performance.now();
  const reached = () => (firstPacketOnly ? v.timings.firstPacket : v.timings.firstKeyframe);
  while (reached() === null) {
    if (performance.now() - t0 > timeoutMs) {
      throw new Error(`no keyframe ${timeoutMs} ms after the answer (state ${v.pc.connectionState}, ${v.packets} packets)`);
    }
    await sleep(20);
  }
  return reached()!;
}

interface SrtpSessionLike {
  decrypt: (buf: Buffer) => Buffer;
  remoteContext?: { cipher?: { aeadAuthTagLen?: number } };
}

/**
 * Stops decrypting the viewer's SRTP (werift does it in JavaScript, the load generator's biggest
 * cost): the RTP header is clear text, so with the auth tag cut off werift still parses, counts,
 * NACKs and sends receiver reports as before; only the payload stays encrypted (same length).
 */
function skipDecrypt(v: WhepViewer) {
  for (const t of v.pc.dtlsTransports as unknown as { srtp?: SrtpSessionLike }[]) {
    const srtp = t.srtp;
    if (!srtp) continue;
    const tag = srtp.remoteContext?.cipher?.aeadAuthTagLen ?? 10;
    srtp.decrypt = (buf) => buf.subarray(0, buf.length - tag);
  }
}

async function join(cmd: Command) {
  const tokens = [...(cmd.tokens ?? [])];
  const timeoutMs = cmd.timeoutMs ?? 20_000;
  const errors: string[] = [];
  const firstKeyframeMs: number[] = [];
  let joined = 0;
  const lane = async () => {
    for (let token = tokens.shift(); token !== undefined; token = tokens.shift()) {
      try {
        const connect = whepConnect(cmd.url!, token, { countOnly: true });
        let timer: NodeJS.Timeout | undefined;
        const v = await Promise.race([
          connect,
          new Promise<never>((_, reject) => {
            timer = setTimeout(() => {
              // A late answer still makes a peer: close it when it comes, so nothing leaks.
              connect.then((late) => late.close()).catch(() => {});
              reject(new Error(`no WHEP answer in ${timeoutMs} ms`));
            }, timeoutMs);
          }),
        ]).finally(() => clearTimeout(timer));
        try {
          firstKeyframeMs.push(await firstKeyframe(v, timeoutMs, cmd.firstPacketOnly));
          if (cmd.skipDecrypt) skipDecrypt(v);
        } catch (e) {
          await v.close().catch(() => {});
          throw e;
        }
        peers.push(v);
        joined++;
      } catch (e) {
        errors.push((e as Error).message);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, cmd.concurrency ?? 5) }, lane));
  return { joined, failed: errors.length, errors: errors.slice(0, 5), firstKeyframeMs };
}

async function handle(cmd: Command): Promise<object> {
  switch (cmd.op) {
    case 'join':
      return join(cmd);
    case 'stats':
      return {
        at: performance.now(),
        packets: peers.map((p) => p.packets),
        bytes: peers.map((p) => p.bytes),
        states: peers.map((p) => `${p.pc.iceConnectionState}/${p.pc.connectionState}`),
        vanished: [...vanished],
      };
    case 'vanish': {
      const v = peers[cmd.index ?? 0];
      if (!v) throw new Error(`no peer ${cmd.index}`);
      vanished.add(cmd.index ?? 0);
      await v.vanish();
      return { ok: true, resource: v.resource };
    }
    case 'close':
      await Promise.race([Promise.allSettled(peers.map((p) => p.close())), sleep(5000)]);
      return { ok: true };
    default:
      throw new Error(`unknown op ${String((cmd as { op: unknown }).op)}`);
  }
}

const rl = createInterface({ input: process.stdin });
rl.on('line', (line) => {
  if (!line.trim()) return;
  let cmd: Command;
  try {
    cmd = JSON.parse(line) as Command;
  } catch {
    process.stderr.write(`whep-load: not JSON: ${line.slice(0, 200)}\n`);
    return;
  }
  handle(cmd).then(
    (r) => {
      reply({ id: cmd.id, ...r });
      if (cmd.op === 'close') setTimeout(() => process.exit(0), 50);
    },
    (e: Error) => reply({ id: cmd.id, error: e.message }),
  );
});
rl.on('close', () => process.exit(0));
process.stderr.write(`whep-load: ready (pid ${process.pid})\n`);
reply({ id: 0, ready: true, pid: process.pid });
