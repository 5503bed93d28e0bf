import { createSocket } from 'node:dgram';
import { connect } from 'node:net';
import fc from 'fast-check';
import t from 'tap';
import { SIP_MAX_SERVER_TRANSACTIONS } from '../../gateway/src/gb28181/sip/endpoint.js';
import { SipParseError, parseCSeq, parseNameAddr, parseSipMessage, parseVia, serializeSipMessage, sipUser, type SipMessage } from '../../gateway/src/gb28181/sip/message.js';
import type { SipPeer } from '../../gateway/src/gb28181/sip/transport.js';
import { checkProperty, fuzzParameters, heapAfterGc, oneAtATime } from '../helpers/fuzz.js';
import { DEVICE_ID, GATEWAY_ID, sipNode, within } from '../helpers/sip.js';

/**
 * Random and mutated SIP fed to the parser, then to a live transport over UDP and TCP: nothing but
 * SipParseError ever leaves the parser, what it accepts writes out and reads back the same, and the
 * endpoint keeps answering with its memory bounded (connections closed, transactions capped).
 * A fixed few seconds each (FUZZ_MS raises it).
 */

const SEEDS = [
  'REGISTER sip:34020000002000000001@3402000000 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10:5060;rport;branch=z9hG4bK1a2b3c\r\nFrom: <sip:34020000001320000001@3402000000>;tag=4711\r\nTo: <sip:34020000001320000001@3402000000>\r\nCall-ID: 8c1e7f@192.0.2.10\r\nCSeq: 1 REGISTER\r\nContact: <sip:34020000001320000001@192.0.2.10:5060>\r\nMax-Forwards: 70\r\nExpires: 3600\r\nAuthorization: Digest username="34020000001320000001", realm="3402000000", nonce="e1f5", uri="sip:34020000002000000001@3402000000", response="0123456789abcdef0123456789abcdef", algorithm=MD5\r\nContent-Length: 0\r\n\r\n',
  'MESSAGE sip:34020000002000000001@3402000000 SIP/2.0\r\nv: SIP/2.0/TCP 192.0.2.10:5060;branch=z9hG4bKm1\r\nf: "摄像机" <sip:34020000001320000001@3402000000>;tag=9\r\nt: <sip:34020000002000000001@3402000000>\r\ni: k1\r\nCSeq: 20 MESSAGE\r\nc: Application/MANSCDP+xml\r\nl: 90\r\n\r\n<?xml version="1.0" encoding="GB2312"?><Notify><CmdType>Keepalive</CmdType><SN>43</SN></Notify>',
  'INVITE sip:34020000001320000001@3402000000 SIP/2.0\nVia: SIP/2.0/UDP 198.51.100.5:5060;branch=z9hG4bKi1, SIP/2.0/UDP 10.0.0.1\nFrom: <sip:34020000002000000001@3402000000>;tag=a\nTo: sip:34020000001320000001@3402000000\nCall-ID: inv1\nCSeq: 3 INVITE\nSubject: 34020000001320000001:0200000001,34020000002000000001:0\nContent-Type: APPLICATION/SDP\nContent-Length: 24\n\nv=0\r\ns=Play\r\ny=0200000001\r\n',
  'SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKnone;received=127.0.0.1;rport=5060\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: x\r\nCSeq: 1 MESSAGE\r\nContent-Length: 0\r\n\r\n',
].map((s) => Buffer.from(s));

const ASCII_BITS = ['\r\n', '\n', ' ', ':', ';', ',', '<', '>', '"', '@', '=', 'Content-Length: 99999', 'l: -1', 'Via: ', 'SIP/2.0', ' \t', 'z9hG4bK', '\r\n\r\n', 'CSeq: 1 BYE', 'tag='];

/** A seed with a few byte-level edits: flips, cuts, inserted SIP fragments or raw bytes, truncation. */
const mutated = fc
  .tuple(
    fc.constantFrom(...SEEDS),
    fc.array(
      fc.oneof(
        fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }),
        fc.record({ kind: fc.constant('cut' as const), at: fc.nat(), length: fc.integer({ min: 1, max: 40 }) }),
        fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), text: fc.constantFrom(...ASCII_BITS) }),
        fc.record({ kind: fc.constant('bytes' as const), at: fc.nat(), bytes: fc.uint8Array({ maxLength: 16 }) }),
        fc.record({ kind: fc.constant('repeat' as const), at: fc.nat(), times: fc.integer({ min: 2, max: 80 }) }),
        fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
      ),
      { minLength: 1, maxLength: 6 },
    ),
  )
  .map(([seed, edits]) => {
    let b = Buffer.from(seed);
    for (const e of edits) {
      const at = e.at % (b.length + 1);
      if (e.kind === 'flip' && b.length > 0) b[at % b.length] = e.byte;
      else if (e.kind === 'cut') b = Buffer.concat([b.subarray(0, at), b.subarray(at + e.length)]);
      else if (e.kind === 'insert') b = Buffer.concat([b.subarray(0, at), Buffer.from(e.text), b.subarray(at)]);
      else if (e.kind === 'bytes') b = Buffer.concat([b.subarray(0, at), Buffer.from(e.bytes), b.subarray(at)]);
      else if (e.kind === 'repeat') {
        const line = b.subarray(at, b.indexOf('\n', at) + 1 || b.length);
        b = Buffer.concat([b.subarray(0, at), ...Array.from({ length: e.times }, () => line), b.subarray(at)]);
      } else if (e.kind === 'truncate') b = b.subarray(0, at);
    }
    return b.subarray(0, 70_000);
  });

const anyInput = fc.oneof({ arbitrary: mutated, weight: 6 }, { arbitrary: fc.uint8Array({ maxLength: 2_000 }).map((a) => Buffer.from(a)), weight: 1 });

/** Every helper on every header it reads: a value or SipParseError, nothing else. */
function readAll(m: SipMessage): void {
  const only = (f: () => unknown) => {
    try {
      f();
    } catch (err) {
      if (!(err instanceof SipParseError)) throw err;
    }
  };
  for (const [name, value] of m.headers) {
    const n = name.toLowerCase();
    if (n === 'via') only(() => parseVia(value));
    if (n === 'from' || n === 'to' || n === 'contact') only(() => parseNameAddr(value));
    if (n === 'cseq') only(() => parseCSeq(value));
  }
  if (m.type === 'request') sipUser(m.uri);
}

t.test('the parser: only SipParseError escapes, and what it accepts round-trips', async (t) => {
  const runs = await checkProperty(
    fc.asyncProperty(anyInput, async (input) => {
      let m: SipMessage;
      try {
        m = parseSipMessage(input);
      } catch (err) {
        if (err instanceof SipParseError) return;
        throw err;
      }
      readAll(m);
      const again = parseSipMessage(serializeSipMessage(m));
      const withoutLength = (x: SipMessage) => ({ ...x, headers: x.headers.filter(([n]) => n.toLowerCase() !== 'content-length') });
      if (JSON.stringify(withoutLength(again)) !== JSON.stringify(withoutLength(m))) throw new Error(`round trip changed ${JSON.stringify(input.toString('latin1'))}`);
    }),
    fuzzParameters(200_000, 4_000),
  );
  t.ok(runs > 1_000, `${runs} inputs`);
});

t.test('a live transport over UDP and TCP: no crash, bounded memory, still answering', async (t) => {
  const gw = await sipNode(t, GATEWAY_ID, { maxMessageBytes: 8_192 });
  const dev = await sipNode(t, DEVICE_ID);
  gw.endpoint.onRequest('MESSAGE', (req, peer) => gw.endpoint.reply(req, peer, 200, 'OK'));
  gw.endpoint.onRequest('REGISTER', (req, peer) => gw.endpoint.reply(req, peer, 401, 'Unauthorized', { headers: [['WWW-Authenticate', 'Digest realm="3402000000", nonce="1", algorithm=MD5']] }));
  gw.endpoint.onRequest('INVITE', (req, peer) => gw.endpoint.reply(req, peer, 486, 'Busy Here'));
  let dropped = 0;
  gw.transport.on('dropped', () => dropped++);
  const udp = createSocket('udp4');
  udp.on('error', () => {});
  udp.on('message', () => {});
  t.teardown(() => udp.close());
  const answers = async () => {
    for (const transport of ['udp', 'tcp'] as const) {
      const peer: SipPeer = { transport, address: '127.0.0.1', port: (transport === 'udp' ? gw.udpPort : gw.tcpPort)! };
      const res = await dev.endpoint.request(peer, { method: 'MESSAGE', targetId: GATEWAY_ID }, { timeoutMs: 3_000 });
      if (res.status !== 200) throw new Error(`answered ${res.status} over ${transport}`);
    }
  };
  await answers();
  const heapBefore = heapAfterGc();

  const { run, settled } = oneAtATime(async (input: Buffer, cuts: number[]) => {
    udp.send(input.subarray(0, 60_000), gw.udpPort!, '127.0.0.1');
    const socket = connect(gw.tcpPort!, '127.0.0.1');
    socket.on('error', () => {});
    socket.resume();
    await new Promise((resolve) => socket.once('connect', resolve));
    // The same bytes over TCP, cut into pieces at random points, then twice in a row (stream framing).
    let from = 0;
    for (const cut of [...cuts].sort((a, b) => a - b)) {
      const to = Math.min(input.length, cut % (input.length + 1));
      if (to > from) socket.write(input.subarray(from, to));
      from = Math.max(from, to);
    }
    socket.write(input.subarray(from));
    socket.write(input);
    socket.end();
    // Closed by us or reset by the gateway (it drops a connection whose framing is lost): either is an end.
    await within(new Promise((resolve) => socket.once('close', resolve)), 5_000, 'the fuzz connection closing');
  });
  const runs = await checkProperty(
    fc.asyncProperty(anyInput, fc.array(fc.nat(), { maxLength: 4 }), run),
    fuzzParameters(100_000, 4_000),
  );
  await settled();
  await answers();
  t.ok(runs > 50, `${runs} inputs, ${dropped} dropped`);
  t.ok(dropped > 0, 'bad input was seen and dropped');
  const wait = Date.now() + 3_000;
  while (gw.transport.connectionCount > 1 && Date.now() < wait) await new Promise((r) => setTimeout(r, 20));
  t.equal(gw.transport.connectionCount, 1, 'every fuzz connection is gone from the transport; the device keeps its one');
  t.ok(gw.endpoint.sizes.serverTransactions <= SIP_MAX_SERVER_TRANSACTIONS, 'server transactions capped');
  t.equal(gw.endpoint.sizes.clientTransactions, 0);
  t.equal(gw.endpoint.sizes.dialogs, 0);
  const growth = heapAfterGc() - heapBefore;
  t.ok(growth < 20 * 1024 * 1024, `heap grew ${(growth / 1048576).toFixed(1)} MB (under 20 MB)`);
});

t.test('every request the parser accepts (but ACK) gets exactly one answer, bad ones a 400', async (t) => {
  const gw = await sipNode(t, GATEWAY_ID);
  gw.endpoint.onRequest('MESSAGE', (req, peer) => gw.endpoint.reply(req, peer, 200, 'OK'));
  gw.endpoint.onRequest('INVITE', (req, peer) => gw.endpoint.reply(req, peer, 486, 'Busy Here'));
  const socket = createSocket('udp4');
  socket.on('error', () => {});
  t.teardown(() => socket.close());
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  const inbox: Buffer[] = [];
  let wake: (() => void) | null = null;
  socket.on('message', (b) => {
    inbox.push(b);
    wake?.();
  });
  const statuses = new Map<number, number>();
  const { run, settled } = oneAtATime(async (input: Buffer) => {
    let req: SipMessage;
    try {
      req = parseSipMessage(input);
    } catch {
      return;
    }
    if (req.type !== 'request' || req.method === 'ACK' || input.length > 8_000) return;
    inbox.length = 0;
    socket.send(input, gw.udpPort!, '127.0.0.1');
    await within(
      new Promise<void>((resolve) => {
        wake = resolve;
        if (inbox.length > 0) resolve();
      }),
      2_000,
      `an answer to ${JSON.stringify(input.toString('latin1').slice(0, 200))}`,
    );
    // A second answer would arrive right behind the first.
    await new Promise((r) => setTimeout(r, 5));
    if (inbox.length !== 1) throw new Error(`${inbox.length} answers`);
    const answer = parseSipMessage(inbox[0]!);
    if (answer.type !== 'response') throw new Error('answered with a request');
    statuses.set(answer.status, (statuses.get(answer.status) ?? 0) + 1);
  });
  const runs = await checkProperty(fc.asyncProperty(mutated, run), fuzzParameters(100_000, 4_000));
  await settled();
  t.ok(runs > 50, `${runs} inputs; answers by status: ${JSON.stringify(Object.fromEntries(statuses))}`);
  t.ok(statuses.get(400), 'some were refused as bad requests');
  t.ok(statuses.get(200) ?? statuses.get(486), 'some were handled');
});
