import t from 'tap';
import { answerAddress, offer } from '../../../gateway/src/gb28181/play-driver.js';

/** The live INVITE's SDP (GB/T 28181 App. G): what a device reads to know where and how to send. */
const lines = (sdp: string) => sdp.split('\r\n').filter(Boolean);
const base = { ourId: '34020000002000000001', address: '198.51.100.5', port: 30000, ssrc: '0200000001', streamNumber: 0 };

t.test('UDP: RTP/AVP, recvonly, PS on 96 and H.264 on 98, y= last, no a=setup', async (t) => {
  const sdp = offer({ ...base, mode: 'udp' });
  t.ok(sdp.endsWith('\r\n'), 'CRLF line ends');
  t.same(lines(sdp), [
    'v=0',
    'o=34020000002000000001 0 0 IN IP4 198.51.100.5',
    's=Play',
    'c=IN IP4 198.51.100.5',
    't=0 0',
    'm=video 30000 RTP/AVP 96 98',
    'a=recvonly',
    'a=rtpmap:96 PS/90000',
    'a=rtpmap:98 H264/90000',
    'y=0200000001',
  ]);
});

t.test('TCP: TCP/RTP/AVP with a=setup from our side (passive: we listen; active: we dial) and a=connection:new', async (t) => {
  const passive = lines(offer({ ...base, mode: 'tcp-passive' }));
  t.ok(passive.includes('m=video 30000 TCP/RTP/AVP 96 98'));
  t.ok(passive.includes('a=setup:passive'));
  t.ok(passive.includes('a=connection:new'));
  const active = lines(offer({ ...base, mode: 'tcp-active', port: 9 }));
  t.ok(active.includes('a=setup:active'));
  t.equal(active.filter((l) => l.startsWith('a=setup')).length, 1);
});

t.test('the sub-stream is asked for with a=streamnumber:1; the main stream says nothing', async (t) => {
  t.ok(lines(offer({ ...base, mode: 'udp', streamNumber: 1 })).includes('a=streamnumber:1'));
  t.notOk(offer({ ...base, mode: 'udp' }).includes('streamnumber'));
});

t.test("the device's answer: its address and port (TCP active dials them)", async (t) => {
  t.same(answerAddress('v=0\r\nc=IN IP4 10.1.2.3\r\nm=video 15060 TCP/RTP/AVP 96\r\ny=0200000001\r\n'), { address: '10.1.2.3', port: 15060 });
  t.same(answerAddress('v=0\r\nc=IN IP4 10.1.2.3\r\n'), { address: '10.1.2.3', port: 0 });
  t.equal(answerAddress('v=0\r\nm=video 1 RTP/AVP 96\r\n'), null);
});
