import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { connect } from 'node:net';
import t, { type Test } from 'tap';
import { SipStatusError, SipTimeoutError } from '../../../gateway/src/gb28181/sip/endpoint.js';
import { header, headers, parseNameAddr, parseSipMessage, parseVia, type SipRequest } from '../../../gateway/src/gb28181/sip/message.js';
import type { SipPeer } from '../../../gateway/src/gb28181/sip/transport.js';
import { DEVICE_ID, DOMAIN, GATEWAY_ID, sipNode, within } from '../../helpers/sip.js';

const keepalive = Buffer.from('<?xml version="1.0" encoding="GB2312"?>\r\n<Notify><CmdType>Keepalive</CmdType><SN>1</SN></Notify>');

/** A raw datagram exchange, for what an endpoint would never send itself. */
async function rawUdp(t: Test, port: number, text: string) {
  const socket = createSocket('udp4');
  t.teardown(() => socket.close());
  socket.bind(0, '127.0.0.1');
  await once(socket, 'listening');
  socket.send(Buffer.from(text), port, '127.0.0.1');
  const [reply] = (await within(once(socket, 'message'), 3_000, 'an answer to a raw datagram')) as [Buffer];
  return { reply: parseSipMessage(reply), port: socket.address().port };
}

for (const transport of ['udp', 'tcp'] as const) {
  t.test(`${transport}: a MESSAGE gets its handler's 200, with the dialog ids echoed, a To tag and the source recorded in Via`, async (t) => {
    const gw = await sipNode(t, GATEWAY_ID);
    const dev = await sipNode(t, DEVICE_ID);
    let seen: { req: SipRequest; peer: SipPeer } | null = null;
    gw.endpoint.onRequest('MESSAGE', (req, peer) => {
      seen = { req, peer };
      gw.endpoint.reply(req, peer, 200, 'OK');
    });
    const to: SipPeer = { transport, address: '127.0.0.1', port: (transport === 'udp' ? gw.udpPort : gw.tcpPort)! };
    const res = await dev.endpoint.request(to, { method: 'MESSAGE', targetId: GATEWAY_ID, contentType: 'Application/MANSCDP+xml', body: keepalive });
    t.equal(res.status, 200);
    t.ok(seen, 'the handler ran');
    const req = seen!.req as SipRequest;
    t.equal(req.uri, `sip:${GATEWAY_ID}@${DOMAIN}`);
    t.equal(req.body.toString(), keepalive.toString());
    t.equal(header(req, 'Max-Forwards'), '70');
    t.equal(header(req, 'User-Agent'), `test ${DEVICE_ID}`);
    t.equal(parseNameAddr(header(req, 'From')!).user, DEVICE_ID);
    t.ok(parseVia(header(req, 'Via')!).branch?.startsWith('z9hG4bK'));
    for (const name of ['From', 'Call-ID', 'CSeq']) t.equal(header(res, name), header(req, name), `${name} echoed`);
    t.match(parseNameAddr(header(res, 'To')!).tag, /^[0-9a-f]+$/, 'a To tag on the final answer');
    const via = parseVia(header(res, 'Via')!);
    t.equal(via.rport, seen!.peer.port, 'rport filled with the source port');
    t.equal(via.received, '127.0.0.1');
    t.equal(via.transport, transport.toUpperCase());
  });
}

t.test('udp: the first answer is lost; the retransmitted request gets the cached answer, the handler runs once', async (t) => {
  const gw = await sipNode(t, GATEWAY_ID);
  const dev = await sipNode(t, DEVICE_ID);
  let handled = 0;
  gw.endpoint.onRequest('MESSAGE', (req, peer) => {
    handled++;
    gw.endpoint.reply(req, peer, 200, 'OK', { body: Buffer.from('first'), contentType: 'text/plain' });
  });
  const send = gw.transport.send.bind(gw.transport);
  let lost = 0;
  gw.transport.send = async (peer, m) => {
    if (m.type === 'response' && lost++ === 0) return;
    return send(peer, m);
  };
  const started = Date.now();
  const res = await dev.endpoint.request({ transport: 'udp', address: '127.0.0.1', port: gw.udpPort! }, { method: 'MESSAGE', targetId: GATEWAY_ID, body: keepalive });
  t.equal(res.status, 200);
  t.equal(res.body.toString(), 'first', 'the same answer');
  t.equal(handled, 1, 'the handler saw the request once');
  t.equal(gw.transport.stats.messages, 2, 'the request arrived twice');
  t.ok(Date.now() - started >= 450, 'the answer came with the retransmission after T1');
});

t.test('udp: a request nobody answers is sent at 0 and T1 and rejects SipTimeoutError at its timeout', async (t) => {
  const dev = await sipNode(t, DEVICE_ID);
  const silent = createSocket('udp4');
  t.teardown(() => silent.close());
  silent.bind(0, '127.0.0.1');
  await once(silent, 'listening');
  const got: Buffer[] = [];
  silent.on('message', (b) => got.push(b));
  await t.rejects(dev.endpoint.request({ transport: 'udp', address: '127.0.0.1', port: silent.address().port }, { method: 'MESSAGE', targetId: GATEWAY_ID }, { timeoutMs: 1_200 }), SipTimeoutError);
  t.equal(got.length, 2, 'sent, then once more after 500 ms (the next would be at 1,500 ms)');
  t.equal(got[1]?.toString(), got[0]?.toString(), 'the same request, same branch');
});

t.test('tcp: the gateway reaches a device that registered over TCP on its connection, even though the device listens on no TCP port', async (t) => {
  const gw = await sipNode(t, GATEWAY_ID);
  const dev = await sipNode(t, DEVICE_ID, { tcp: false });
  let registered: SipPeer | null = null;
  gw.endpoint.onRequest('REGISTER', (req, peer) => {
    registered = peer;
    gw.endpoint.reply(req, peer, 200, 'OK');
  });
  const asked: SipRequest[] = [];
  dev.endpoint.onRequest('MESSAGE', (req, peer) => {
    asked.push(req);
    t.equal(peer.transport, 'tcp');
    dev.endpoint.reply(req, peer, 200, 'OK');
  });
  const r = await dev.endpoint.request({ transport: 'tcp', address: '127.0.0.1', port: gw.tcpPort! }, { method: 'REGISTER', targetId: GATEWAY_ID, headers: [['Expires', '3600']] });
  t.equal(r.status, 200);
  t.ok(registered!.connectionId, 'the peer names its connection');
  for (let i = 0; i < 3; i++) {
    const res = await gw.endpoint.request(registered!, { method: 'MESSAGE', targetId: DEVICE_ID, body: Buffer.from(`<Query>${i}</Query>`) });
    t.equal(res.status, 200);
  }
  t.equal(asked.length, 3);
  t.equal(gw.transport.connectionCount, 1, 'one connection, reused');
  t.equal(dev.transport.connectionCount, 1);
});

t.test('tcp: a request to a peer without a connection opens one', async (t) => {
  const gw = await sipNode(t, GATEWAY_ID);
  const dev = await sipNode(t, DEVICE_ID);
  dev.endpoint.onRequest('MESSAGE', (req, peer) => dev.endpoint.reply(req, peer, 200, 'OK'));
  const res = await gw.endpoint.request({ transport: 'tcp', address: '127.0.0.1', port: dev.tcpPort! }, { method: 'MESSAGE', targetId: DEVICE_ID });
  t.equal(res.status, 200);
  t.equal(gw.transport.connectionCount, 1);
  await t.rejects(gw.endpoint.request({ transport: 'tcp', address: '127.0.0.1', port: 1 }, { method: 'MESSAGE', targetId: DEVICE_ID }), /ECONNREFUSED/, 'a refused connection fails at once');
});

t.test('NAT: a device whose Via names an unreachable private address is answered at its real source', async (t) => {
  const gw = await sipNode(t, GATEWAY_ID);
  const dev = await sipNode(t, DEVICE_ID);
  gw.endpoint.onRequest('REGISTER', (req, peer) => gw.endpoint.reply(req, peer, 200, 'OK'));
  const privateVia = 'SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKnat1';
  for (const via of [privateVia, `${privateVia.replace('nat1', 'nat2')};rport`]) {
    const res = await dev.endpoint.request({ transport: 'udp', address: '127.0.0.1', port: gw.udpPort! }, { method: 'REGISTER', targetId: GATEWAY_ID, headers: [['Via', via]] });
    const answered = parseVia(header(res, 'Via')!);
    t.equal(answered.received, '127.0.0.1', 'received names the real source');
    t.equal(answered.rport, via.endsWith('rport') ? dev.udpPort : null, 'rport filled only when asked for');
  }
});

t.test('unhandled methods get 405, an unknown BYE 481, a request lacking a mandatory header 400, a bare ACK nothing', async (t) => {
  const gw = await sipNode(t, GATEWAY_ID);
  const dev = await sipNode(t, DEVICE_ID);
  gw.endpoint.onRequest('MESSAGE', (req, peer) => gw.endpoint.reply(req, peer, 200, 'OK'));
  const to: SipPeer = { transport: 'udp', address: '127.0.0.1', port: gw.udpPort! };
  const info = await dev.endpoint.request(to, { method: 'INFO', targetId: GATEWAY_ID });
  t.equal(info.status, 405);
  t.match(header(info, 'Allow'), /MESSAGE/);
  t.equal((await dev.endpoint.request(to, { method: 'BYE', targetId: GATEWAY_ID })).status, 481);

  const base = ['MESSAGE sip:a@b SIP/2.0', 'Via: SIP/2.0/UDP 127.0.0.1:9;rport;branch=z9hG4bKraw', 'From: <sip:x@y>;tag=1', 'To: <sip:a@b>', 'Call-ID: c1', 'CSeq: 1 MESSAGE'];
  for (const name of ['Via', 'From', 'To', 'Call-ID', 'CSeq']) {
    const lines = base.filter((l) => !l.startsWith(`${name}:`));
    const { reply } = await rawUdp(t, gw.udpPort!, lines.join('\r\n') + '\r\nContent-Length: 0\r\n\r\n');
    t.equal(reply.type === 'response' && reply.status, 400, `without ${name}`);
    t.match(reply.type === 'response' && reply.reason, new RegExp(`missing ${name}`));
  }
  const { reply } = await rawUdp(t, gw.udpPort!, base.map((l) => (l.startsWith('CSeq') ? 'CSeq: 1 INVITE' : l)).join('\r\n') + '\r\n\r\n');
  t.equal(reply.type === 'response' && reply.status, 400, 'a CSeq method that is not the request method');

  let acks = 0;
  gw.endpoint.onRequest('ACK', () => acks++);
  const ack = createSocket('udp4');
  t.teardown(() => ack.close());
  let answered = false;
  ack.on('message', () => (answered = true));
  ack.send(Buffer.from(base.map((l) => l.replace('MESSAGE', 'ACK')).join('\r\n') + '\r\n\r\n'), gw.udpPort!, '127.0.0.1');
  const res = await dev.endpoint.request(to, { method: 'MESSAGE', targetId: GATEWAY_ID });
  t.equal(res.status, 200, 'a request after the ACK is answered, so the ACK was processed before it');
  t.equal(acks, 1, 'the ACK reached its handler');
  t.notOk(answered, 'and got no answer');
});

t.test('a handler that throws gets the request a 500, and the endpoint goes on', async (t) => {
  const gw = await sipNode(t, GATEWAY_ID);
  const dev = await sipNode(t, DEVICE_ID);
  gw.endpoint.onRequest('MESSAGE', () => {
    throw new Error('bug');
  });
  gw.endpoint.onRequest('NOTIFY', async () => {
    throw new Error('async bug');
  });
  const to: SipPeer = { transport: 'udp', address: '127.0.0.1', port: gw.udpPort! };
  t.equal((await dev.endpoint.request(to, { method: 'MESSAGE', targetId: GATEWAY_ID })).status, 500);
  t.equal((await dev.endpoint.request(to, { method: 'NOTIFY', targetId: GATEWAY_ID })).status, 500);
});

for (const transport of ['udp', 'tcp'] as const) {
  t.test(`${transport}: INVITE → 200 with SDP → ACK to the Contact on a new branch; BYE both ways`, async (t) => {
    const gw = await sipNode(t, GATEWAY_ID);
    const dev = await sipNode(t, DEVICE_ID);
    const devicePort = (transport === 'udp' ? dev.udpPort : dev.tcpPort)!;
    const deviceSdp = 'v=0\r\no=34020000001320000001 0 0 IN IP4 127.0.0.1\r\ns=Play\r\ny=0200000001\r\n';
    const invites: SipRequest[] = [];
    const acks: SipRequest[] = [];
    const byes: SipRequest[] = [];
    let inviteAt: SipPeer | null = null;
    dev.endpoint.onRequest('INVITE', (req, peer) => {
      invites.push(req);
      inviteAt = peer;
      dev.endpoint.reply(req, peer, 100, 'Trying');
      dev.endpoint.reply(req, peer, 200, 'OK', { body: Buffer.from(deviceSdp), contentType: 'application/sdp', toTag: `dev${invites.length}`, headers: [['Contact', `<sip:${DEVICE_ID}@127.0.0.1:${devicePort}>`]] });
    });
    const ackSeen = new Promise<void>((resolve) =>
      dev.endpoint.onRequest('ACK', (req) => {
        acks.push(req);
        resolve();
      }),
    );
    dev.endpoint.onRequest('BYE', (req, peer) => {
      byes.push(req);
      dev.endpoint.reply(req, peer, 200, 'OK');
    });
    const peer: SipPeer = { transport, address: '127.0.0.1', port: devicePort };
    const subject = `${DEVICE_ID}:0200000001,${GATEWAY_ID}:0`;
    const dialog = await gw.endpoint.invite(peer, { targetId: DEVICE_ID, subject, sdp: 'v=0\r\ns=Play\r\n' });
    t.equal(dialog.remoteSdp, deviceSdp);
    await within(ackSeen, 3_000, 'the ACK');
    const invite = invites[0]!;
    t.equal(header(invite, 'Subject'), subject);
    t.equal(header(invite, 'Content-Type'), 'APPLICATION/SDP');
    t.ok(header(invite, 'Contact'), 'an INVITE carries our Contact');
    t.equal(invites.length, 1);
    const ack = acks[0]!;
    t.equal(ack.uri, `sip:${DEVICE_ID}@127.0.0.1:${devicePort}`, 'the ACK goes to the Contact of the 200');
    t.not(parseVia(header(ack, 'Via')!).branch, parseVia(header(invite, 'Via')!).branch, 'on a new branch');
    t.equal(header(ack, 'CSeq'), header(invite, 'CSeq')!.replace('INVITE', 'ACK'));
    t.equal(parseNameAddr(header(ack, 'To')!).tag, 'dev1');
    t.equal(header(ack, 'Call-ID'), dialog.callId);

    // The gateway hangs up.
    await dialog.bye();
    t.equal(byes.length, 1);
    const bye = byes[0]!;
    t.equal(header(bye, 'Call-ID'), dialog.callId);
    t.equal(bye.uri, ack.uri);
    t.equal(parseNameAddr(header(bye, 'To')!).tag, 'dev1');
    t.equal(parseNameAddr(header(bye, 'From')!).tag, parseNameAddr(header(invite, 'From')!).tag);
    t.ok(Number(header(bye, 'CSeq')!.split(' ')[0]) > Number(header(invite, 'CSeq')!.split(' ')[0]), 'CSeq goes up');
    await dialog.bye();
    t.equal(byes.length, 1, 'a second bye() sends nothing');

    // The device hangs up on a second call.
    const second = await gw.endpoint.invite(peer, { targetId: DEVICE_ID, subject, sdp: 'v=0\r\n' });
    let byeCalls = 0;
    const ended = new Promise<void>((resolve) =>
      second.onBye(() => {
        byeCalls++;
        resolve();
      }),
    );
    const inv2 = invites[1]!;
    const res = await dev.endpoint.request(inviteAt!, {
      method: 'BYE',
      targetId: GATEWAY_ID,
      uri: parseNameAddr(header(inv2, 'Contact')!).uri,
      headers: [
        ['From', `${header(inv2, 'To')};tag=dev2`],
        ['To', header(inv2, 'From')!],
        ['Call-ID', second.callId],
        ['CSeq', '1 BYE'],
      ],
    });
    t.equal(res.status, 200, 'the device’s BYE is answered 200');
    await within(ended, 2_000, 'onBye');
    t.equal(byeCalls, 1);
    let late = 0;
    second.onBye(() => late++);
    await new Promise((r) => setImmediate(r));
    t.equal(late, 1, 'onBye registered after the BYE still runs');
    await second.bye();
    t.equal(byes.length, 1, 'no BYE for a dialog the device ended');
  });
}

t.test('INVITE refused: SipStatusError with status and reason, the device gets an ACK on the INVITE branch', async (t) => {
  const gw = await sipNode(t, GATEWAY_ID);
  const dev = await sipNode(t, DEVICE_ID);
  let invite: SipRequest | null = null;
  const acked = new Promise<SipRequest>((resolve) => dev.endpoint.onRequest('ACK', (req) => resolve(req)));
  dev.endpoint.onRequest('INVITE', (req, peer) => {
    invite = req;
    dev.endpoint.reply(req, peer, 180, 'Ringing', { toTag: 'ring' });
    dev.endpoint.reply(req, peer, 486, 'Busy Here');
  });
  const err = await gw.endpoint.invite({ transport: 'udp', address: '127.0.0.1', port: dev.udpPort! }, { targetId: DEVICE_ID, subject: 's', sdp: 'v=0\r\n' }).catch((e: unknown) => e);
  t.ok(err instanceof SipStatusError);
  t.equal((err as SipStatusError).status, 486);
  t.equal((err as SipStatusError).reason, 'Busy Here');
  const ack = await within(acked, 3_000, 'the ACK to 486');
  t.equal(parseVia(header(ack, 'Via')!).branch, parseVia(header(invite!, 'Via')!).branch, 'the same branch: inside the transaction');
  t.equal(ack.uri, invite!.uri);
  t.equal(parseNameAddr(header(ack, 'To')!).tag, 'ring', 'the To tag given with the 180 is kept for the final answer');
});

t.test('a 200 that arrives after the INVITE timed out is ACKed and hung up at once', async (t) => {
  const gw = await sipNode(t, GATEWAY_ID);
  const dev = await sipNode(t, DEVICE_ID);
  const port = dev.tcpPort!;
  let answer: (() => void) | null = null;
  dev.endpoint.onRequest('INVITE', (req, peer) => {
    answer = () => dev.endpoint.reply(req, peer, 200, 'OK', { body: Buffer.from('v=0\r\n'), contentType: 'application/sdp', headers: [['Contact', `<sip:${DEVICE_ID}@127.0.0.1:${port}>`]] });
  });
  const acked = new Promise<void>((resolve) => dev.endpoint.onRequest('ACK', () => resolve()));
  const bye = new Promise<SipRequest>((resolve) =>
    dev.endpoint.onRequest('BYE', (req, peer) => {
      dev.endpoint.reply(req, peer, 200, 'OK');
      resolve(req);
    }),
  );
  await t.rejects(gw.endpoint.invite({ transport: 'tcp', address: '127.0.0.1', port }, { targetId: DEVICE_ID, subject: 's', sdp: 'v=0\r\n' }, { timeoutMs: 600 }), SipTimeoutError);
  answer!();
  await within(acked, 3_000, 'the ACK to the late 200');
  t.ok(await within(bye, 3_000, 'the BYE after the late 200'));
});

t.test('a request with a malformed header of the caller\'s own rejects rather than throws', async (t) => {
  const dev = await sipNode(t, DEVICE_ID);
  const pending = dev.endpoint.request({ transport: 'udp', address: '127.0.0.1', port: 9 }, { method: 'MESSAGE', targetId: GATEWAY_ID, headers: [['Via', 'nonsense']] });
  await t.rejects(pending, /bad Via/);
});

t.test('close() rejects pending requests', async (t) => {
  const gw = await sipNode(t, GATEWAY_ID);
  const dev = await sipNode(t, DEVICE_ID);
  gw.endpoint.onRequest('MESSAGE', () => {});
  const pending = dev.endpoint.request({ transport: 'udp', address: '127.0.0.1', port: gw.udpPort! }, { method: 'MESSAGE', targetId: GATEWAY_ID });
  await new Promise((r) => setTimeout(r, 50));
  await dev.endpoint.close();
  await t.rejects(pending, /closed/);
  await t.rejects(dev.endpoint.request({ transport: 'udp', address: '127.0.0.1', port: gw.udpPort! }, { method: 'MESSAGE', targetId: GATEWAY_ID }), /closed/);
});

t.test('transport: bad input is dropped with a reason and never stops the endpoint answering', async (t) => {
  const gw = await sipNode(t, GATEWAY_ID, { maxMessageBytes: 4_096 });
  const dev = await sipNode(t, DEVICE_ID);
  gw.endpoint.onRequest('MESSAGE', (req, peer) => gw.endpoint.reply(req, peer, 200, 'OK'));
  const dropped: string[] = [];
  gw.transport.on('dropped', (_peer, reason) => dropped.push(reason));

  const udp = createSocket('udp4');
  t.teardown(() => udp.close());
  for (const junk of ['hello', 'INVITE\r\n\r\n', 'x'.repeat(5_000)]) udp.send(Buffer.from(junk), gw.udpPort!, '127.0.0.1');
  udp.send(Buffer.from('\r\n\r\n'), gw.udpPort!, '127.0.0.1');

  const tcpCases = [
    ['MESSAGE sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP 1.2.3.4\r\n\r\n', /no valid Content-Length/],
    [`MESSAGE sip:a@b SIP/2.0\r\nContent-Length: 99999\r\n\r\n`, /exceeds the limit of 4096/],
    ['X'.repeat(5_000), /headers longer than 4096/],
  ] as const;
  for (const [junk, reason] of tcpCases) {
    const socket = connect(gw.tcpPort!, '127.0.0.1');
    socket.on('error', () => {});
    socket.write(junk);
    await within(once(socket, 'close'), 3_000, 'the gateway closing a connection whose framing is lost');
    t.match(dropped.at(-1), reason);
  }
  const framed = connect(gw.tcpPort!, '127.0.0.1');
  framed.on('error', () => {});
  t.teardown(() => framed.destroy());
  framed.write('\r\n\r\nNOT SIP AT ALL\r\nContent-Length: 2\r\n\r\nhi');
  const ok = await dev.endpoint.request({ transport: 'udp', address: '127.0.0.1', port: gw.udpPort! }, { method: 'MESSAGE', targetId: GATEWAY_ID });
  t.equal(ok.status, 200, 'still answering');
  t.ok(dropped.some((r) => /bad request line/.test(r)), 'a framed but unparsable message is dropped');
  t.notOk(framed.destroyed, 'and its connection stays, framing intact');
  t.ok(dropped.some((r) => /exceeds the limit of 4096/.test(r) && !/Content/.test(r)), 'an oversized datagram');
  t.ok(dropped.some((r) => /no end of line/.test(r)), 'a datagram without an end of headers');
  t.equal(gw.transport.stats.dropped, dropped.length, 'every drop counted');
  const sipOk = await dev.endpoint.request({ transport: 'tcp', address: '127.0.0.1', port: gw.tcpPort! }, { method: 'MESSAGE', targetId: GATEWAY_ID });
  t.equal(sipOk.status, 200);
  t.same(headers(sipOk, 'Via').length, 1);
});

t.test('port 0 gives UDP and TCP the same port', async (t) => {
  const node = await sipNode(t, GATEWAY_ID);
  t.equal(node.udpPort, node.tcpPort);
});

t.test('udp: a device resends its 200 to INVITE until the ACK comes; the gateway ACKs the resent 200 again', async (t) => {
  const gw = await sipNode(t, GATEWAY_ID);
  const dev = await sipNode(t, DEVICE_ID);
  dev.endpoint.onRequest('INVITE', (req, peer) => dev.endpoint.reply(req, peer, 200, 'OK', { body: Buffer.from('v=0\r\n'), contentType: 'application/sdp', headers: [['Contact', `<sip:${DEVICE_ID}@127.0.0.1:${dev.udpPort}>`]] }));
  const acks: SipRequest[] = [];
  const acked = new Promise<void>((resolve) =>
    dev.endpoint.onRequest('ACK', (req) => {
      acks.push(req);
      resolve();
    }),
  );
  const send = gw.transport.send.bind(gw.transport);
  let lostAcks = 0;
  gw.transport.send = async (peer, m) => {
    if (m.type === 'request' && m.method === 'ACK' && lostAcks++ === 0) return;
    return send(peer, m);
  };
  const started = Date.now();
  await gw.endpoint.invite({ transport: 'udp', address: '127.0.0.1', port: dev.udpPort! }, { targetId: DEVICE_ID, subject: 's', sdp: 'v=0\r\n' });
  t.equal(dev.endpoint.sizes.unackedAnswers, 1, 'the first ACK was lost: the 200 is being resent');
  await within(acked, 3_000, 'the ACK to the resent 200');
  t.ok(Date.now() - started >= 450, 'after T1');
  t.equal(lostAcks, 2, 'the gateway sent the ACK a second time');
  t.equal(dev.endpoint.sizes.unackedAnswers, 0, 'the ACK ended the resending');
  await new Promise((r) => setTimeout(r, 1_200));
  t.equal(acks.length, 1, 'no more 200s, so no more ACKs');
});

t.test('tcp: a silent connection and a message trickled too slowly are closed; an idle registered one stays', async (t) => {
  const gw = await sipNode(t, GATEWAY_ID, { stallTimeoutMs: 300 });
  const dev = await sipNode(t, DEVICE_ID, { tcp: false });
  gw.endpoint.onRequest('REGISTER', (req, peer) => gw.endpoint.reply(req, peer, 200, 'OK'));
  dev.endpoint.onRequest('MESSAGE', (req, peer) => dev.endpoint.reply(req, peer, 200, 'OK'));
  const dropped: string[] = [];
  gw.transport.on('dropped', (_peer, reason) => dropped.push(reason));
  let registered: SipPeer | null = null;
  gw.transport.on('message', (_m, peer) => (registered ??= peer));
  await dev.endpoint.request({ transport: 'tcp', address: '127.0.0.1', port: gw.tcpPort! }, { method: 'REGISTER', targetId: GATEWAY_ID });

  const silent = connect(gw.tcpPort!, '127.0.0.1');
  silent.on('error', () => {});
  const slow = connect(gw.tcpPort!, '127.0.0.1');
  slow.on('error', () => {});
  // One whole message first (so the connection has spoken), then the start of another, a byte at a time.
  slow.write('OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:9;branch=z9hG4bKslow\r\nFrom: <sip:x@y>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: slow\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n');
  slow.resume();
  const trickle = setInterval(() => slow.write('X'), 50);
  t.teardown(() => clearInterval(trickle));
  await within(new Promise((r) => silent.once('close', r)), 3_000, 'the silent connection closed');
  await within(new Promise((r) => slow.once('close', r)), 3_000, 'the trickling connection closed');
  t.ok(dropped.some((r) => /no SIP message within 300 ms/.test(r)));
  t.ok(dropped.some((r) => /message not completed within 300 ms/.test(r)));
  await new Promise((r) => setTimeout(r, 400));
  t.equal(gw.transport.connectionCount, 1, "the device's connection outlived the stall timeout");
  t.equal((await gw.endpoint.request(registered!, { method: 'MESSAGE', targetId: DEVICE_ID })).status, 200, 'and still carries requests to it');
});
