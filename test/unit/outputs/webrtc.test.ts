import t from 'tap';
import { RtpHeader, RtpPacket } from 'werift';
import { H264Packetizer, MAX_PAYLOAD, packetize, parseAvcConfig } from '../../../gateway/src/outputs/webrtc/h264.js';
import { announceCandidates, checkOffer, parseSdpFragment } from '../../../gateway/src/outputs/webrtc/sdp.js';
import { H264Depacketizer } from '../../../scripts/sim/whep-client.js';

const SPS = Buffer.from('674d401fda014016ec0440000003004000000ca3c60ca8', 'hex');
const PPS = Buffer.from('68ef3c80', 'hex');

function avcRecord(): Buffer {
  return Buffer.concat([Buffer.from([1, 0x4d, 0x40, 0x1f, 0xff, 0xe1]), u16(SPS.length), SPS, Buffer.from([1]), u16(PPS.length), PPS]);
}

function u16(n: number) {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
}

function nal(type: number, size: number, fill = 0xab): Buffer {
  const b = Buffer.alloc(size, fill);
  b[0] = 0x60 | type;
  return b;
}

/** An FLV video tag body: AVC, NALU packet, composition time, 4-byte length-prefixed units. */
function videoTag(keyframe: boolean, nals: Buffer[], cts = 0): Buffer {
  const head = Buffer.from([keyframe ? 0x17 : 0x27, 1, 0, 0, 0]);
  head.writeIntBE(cts, 2, 3);
  return Buffer.concat([head, ...nals.flatMap((n) => [Buffer.from([0, 0, (n.length >> 8) & 0xff, n.length & 0xff]), n])]);
}

function headerTag(): Buffer {
  return Buffer.concat([Buffer.from([0x17, 0, 0, 0, 0]), avcRecord()]);
}

/** Sends payloads through a depacketizer as consecutive RTP packets; returns the access units rebuilt. */
function roundTrip(payloads: Buffer[], seqStart = 65_530) {
  const d = new H264Depacketizer();
  const out: { data: Buffer; keyframe: boolean }[] = [];
  payloads.forEach((p, i) => {
    const header = new RtpHeader({ sequenceNumber: (seqStart + i) & 0xffff, timestamp: 0, marker: i === payloads.length - 1 });
    const au = d.push(new RtpPacket(header, p));
    if (au) out.push(au);
  });
  return out;
}

const annexB = (nals: Buffer[]) => Buffer.concat(nals.flatMap((n) => [Buffer.from([0, 0, 0, 1]), n]));

t.test('the AVC decoder configuration record gives the parameter sets and the SDP profile', async (t) => {
  const config = parseAvcConfig(avcRecord());
  t.ok(config);
  t.equal(config!.lengthSize, 4);
  t.same(config!.sps, [SPS]);
  t.same(config!.pps, [PPS]);
  t.equal(config!.profileLevelId, '4d401f');
  t.equal(parseAvcConfig(Buffer.from([1, 2, 3])), null, 'too short');
  t.equal(parseAvcConfig(Buffer.concat([avcRecord().subarray(0, 10)])), null, 'truncated SPS');
});

t.test('a keyframe becomes STAP-A parameter sets plus FU-A fragments that rebuild the exact frame', async (t) => {
  const p = new H264Packetizer();
  t.equal(p.push(headerTag(), 0), null, 'the sequence header configures, it is not a frame');
  const idr = nal(5, 5_000);
  const au = p.push(videoTag(true, [nal(9, 2), idr]), 40)!;
  t.ok(au.keyframe);
  t.equal(au.timestamp, 40 * 90, '90 kHz clock');
  t.ok(au.payloads.every((x) => x.length <= MAX_PAYLOAD), 'every payload fits the MTU budget');
  t.equal(au.payloads[0]![0]! & 0x1f, 24, 'SPS and PPS travel in one STAP-A, in band');
  t.ok(au.payloads.slice(1).every((x) => (x[0]! & 0x1f) === 28), 'the IDR slice is fragmented as FU-A');
  t.equal(au.bytes, au.payloads.reduce((n, x) => n + x.length, 0));
  const [rebuilt] = roundTrip(au.payloads);
  t.ok(rebuilt!.keyframe);
  t.same(rebuilt!.data, annexB([SPS, PPS, idr]), 'the access unit delimiter is dropped; the rest is bit-exact, across a sequence wrap');
});

t.test('small frames go in one packet; B-frame reordering is noticed; junk is ignored', async (t) => {
  const p = new H264Packetizer();
  t.equal(p.push(videoTag(false, [nal(1, 100)]), 0), null, 'no frame before the decoder configuration');
  p.push(headerTag(), 0);
  const slice = nal(1, 300);
  const au = p.push(videoTag(false, [slice], 80), 1_000)!;
  t.same(au.payloads, [slice], 'a single NAL unit packet');
  t.equal(p.push(videoTag(false, [slice]), 1_040)!.index, au.index + 1, 'frames are numbered, so a peer never sends one twice');
  t.equal(au.timestamp, (1_000 + 80) * 90, 'presentation time = decode time + composition offset');
  t.ok(p.sawReordering, 'a composition offset means B-frames');
  const inBand = p.push(videoTag(true, [SPS, PPS, nal(5, 200)]), 1_040)!;
  t.same(roundTrip(inBand.payloads)[0]!.data, annexB([SPS, PPS, nal(5, 200)]), 'in-band parameter sets are not duplicated');
  t.equal(p.push(Buffer.from([0x27, 1, 0, 0, 0, 0, 0, 0, 99, 1]), 0), null, 'a length past the end is dropped');
  t.equal(p.push(Buffer.from([0x2c, 1, 0, 0, 0]), 0), null, 'not AVC');
  t.same(packetize([nal(5, MAX_PAYLOAD)]).length, 1, 'a unit of exactly the payload size is not fragmented');
});

t.test('a frame missing a packet is dropped by the receiver rather than decoded broken', async (t) => {
  const p = new H264Packetizer();
  p.push(headerTag(), 0);
  const au = p.push(videoTag(true, [nal(5, 4_000)]), 0)!;
  const d = new H264Depacketizer();
  let out: { data: Buffer; keyframe: boolean } | null = null;
  au.payloads.forEach((x, i) => {
    if (i === 2) return;
    out = d.push(new RtpPacket(new RtpHeader({ sequenceNumber: i, marker: i === au.payloads.length - 1 }), x)) ?? out;
  });
  t.equal(out, null);
});

const CHROME_OFFER = [
  'v=0',
  'o=- 4611731400430051336 2 IN IP4 127.0.0.1',
  's=-',
  't=0 0',
  'a=group:BUNDLE 0',
  'm=video 9 UDP/TLS/RTP/SAVPF 96 102 103 104 106 112',
  'c=IN IP4 0.0.0.0',
  'a=candidate:1 1 udp 2113937151 6b1f0a2c-1234-4d6e-9a0b-aabbccddeeff.local 50123 typ host generation 0',
  'a=candidate:2 1 udp 2113937151 192.0.2.7 50124 typ host generation 0',
  'a=ice-ufrag:Yb0x',
  'a=ice-pwd:3i0J7aXs0oM7d8Bl6tCvnpcE',
  'a=fingerprint:sha-256 AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99',
  'a=setup:actpass',
  'a=mid:0',
  'a=recvonly',
  'a=rtpmap:96 VP8/90000',
  'a=rtpmap:102 H264/90000',
  'a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f',
  'a=rtpmap:103 H264/90000',
  'a=fmtp:103 level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=64001f',
  'a=rtpmap:104 H264/90000',
  'a=fmtp:104 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=4d001f',
  'a=rtpmap:106 H264/90000',
  'a=fmtp:106 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=64001f',
  'a=rtpmap:112 AV1/90000',
  '',
].join('\r\n');

t.test('an offer is checked and its best H.264 payload type put first', async (t) => {
  const checked = checkOffer(CHROME_OFFER);
  t.equal(checked.videoPayloadType, 106, 'High profile in packetization mode 1 wins (it decodes Main and Baseline too)');
  t.equal(checked.videoMid, '0');
  t.match(checked.sdp, /m=video 9 UDP\/TLS\/RTP\/SAVPF 106 96 102 103 104 112\r\n/);
  t.notMatch(checked.sdp, /\.local/, 'mDNS candidates are dropped: the gateway sends no multicast queries');
  t.match(checked.sdp, /192\.0\.2\.7 50124/, 'address candidates stay');

  const refuse = (sdp: string, message: RegExp, what: string) =>
    t.throws(() => checkOffer(sdp), { code: 'GW_ERR_VALIDATION', issues: [{ field: 'offer', message }] }, what);
  refuse('hello', /v=0/, 'not SDP');
  refuse(CHROME_OFFER.replace('m=video', 'm=audio'), /no video m-line/, 'no video');
  refuse(CHROME_OFFER.replace('a=recvonly', 'a=sendonly'), /recvonly or sendrecv/, 'a sender only');
  refuse(CHROME_OFFER.replace('m=video 9', 'm=video 0'), /port 0/, 'a rejected m-line');
  refuse(CHROME_OFFER.replace('UDP/TLS/RTP/SAVPF', 'RTP/AVP'), /SAVPF/, 'plain RTP');
  refuse(CHROME_OFFER.replace(/a=ice-pwd:.*\r\n/, ''), /ice-pwd/, 'no ICE password');
  refuse(CHROME_OFFER.replace(/a=fingerprint:.*\r\n/, ''), /fingerprint/, 'no DTLS fingerprint');
  refuse(CHROME_OFFER.replace(/packetization-mode=1/g, 'packetization-mode=0'), /H\.264/, 'no packetization mode 1');
  refuse(CHROME_OFFER.replace('s=-', 's=\u0001'), /control characters/, 'binary junk');
});

t.test('the answer announces only the configured addresses', async (t) => {
  const answer = [
    'v=0',
    'm=video 40001 UDP/TLS/RTP/SAVPF 106',
    'c=IN IP4 10.1.2.3',
    'a=candidate:a 1 udp 2130706431 10.1.2.3 40001 typ host',
    'a=candidate:b 1 udp 2130706431 172.17.0.1 40002 typ host',
    'a=candidate:c 1 udp 1694498815 203.0.113.9 40001 typ srflx raddr 10.1.2.3 rport 40001',
    'a=end-of-candidates',
    '',
  ].join('\r\n');
  const out = announceCandidates(answer, ['198.51.100.4', '10.9.9.9'], null);
  const hosts = out.split('\r\n').filter((l) => l.includes('typ host'));
  t.same(
    hosts.map((l) => l.split(' ').slice(4, 6).join(':')),
    ['198.51.100.4:40001', '10.9.9.9:40001'],
    'one host candidate per announced address, on the port the gateway listens on',
  );
  t.notMatch(out, /172\.17\.0\.1/, 'no other interface leaks into the answer');
  t.match(out, /typ srflx/, 'STUN-learned candidates are kept');
  t.match(out, /c=IN IP4 198\.51\.100\.4/);
  const preferred = announceCandidates(answer, ['198.51.100.4'], '172.17.0.1');
  t.match(preferred, /198\.51\.100\.4 40002 typ host/, 'the bound address picks its socket');
  const unnamed = announceCandidates(answer, [], null).split('\r\n').filter((l) => l.includes('typ host'));
  t.same(unnamed, ['a=candidate:a 1 udp 2130706431 10.1.2.3 40001 typ host'], 'with nothing to announce, one gathered candidate stays');
});

t.test('trickle ICE fragments', async (t) => {
  const f = parseSdpFragment('a=ice-ufrag:Yb0x\r\na=mid:0\r\na=candidate:1 1 udp 1 192.0.2.1 5000 typ host\r\n');
  t.same(f, { candidates: ['candidate:1 1 udp 1 192.0.2.1 5000 typ host'], ufrag: 'Yb0x', mid: '0' });
  t.throws(() => parseSdpFragment('a=candidate:\u0000'), { code: 'GW_ERR_VALIDATION' });
});
