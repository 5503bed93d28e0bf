import t from 'tap';
import { NetworkPolicy } from '../../../gateway/src/lib/cidr.js';
import { checkHost, displayUrl, jtUrl, parseCameraUrl, parseGbUrl, parseJtUrl, protocolFor } from '../../../gateway/src/registry/url-policy.js';

const rejected: [string, RegExp][] = [
  ['file:///etc/passwd', /scheme "file" is not allowed/],
  ['FILE:/etc/shadow', /scheme "file" is not allowed/],
  ['concat:rtsp://10.0.0.1/a|/etc/passwd', /scheme "concat" is not allowed/],
  ['subfile:,start,0,end,0,:/etc/passwd', /scheme "subfile" is not allowed/],
  ['pipe:0', /scheme "pipe" is not allowed/],
  ['data:text/plain;base64,AAAA', /scheme "data" is not allowed/],
  ['gopher://10.0.0.1/', /scheme "gopher" is not allowed/],
  ['tcp://10.0.0.1:554', /scheme "tcp" is not allowed/],
  ['udp://10.0.0.1:554', /scheme "udp" is not allowed/],
  ['crypto:rtsp://10.0.0.1/', /scheme "crypto" is not allowed/],
  ['hls+http://10.0.0.1/a.m3u8', /scheme "hls\+http" is not allowed/],
  ['/etc/passwd', /must start with one of/],
  ['-i /etc/passwd', /must not start with '-'/],
  ['-filter_complex', /must not start with '-'/],
  ['rtsp://10.0.0.1/a b', /white space/],
  ['rtsp://10.0.0.1/a\tb', /white space/],
  ['rtsp://10.0.0.1/a\nb', /white space/],
  ['rtsp://10.0.0.1/a\u0000b', /white space or control/],
  ['rtsp://10.0.0.1/a\u200bb', /white space or control/],
  [' rtsp://10.0.0.1/', /white space/],
  ['rtsp:/10.0.0.1/', /expected rtsp:\/\/host/],
  ['rtsp:///etc/passwd', /must name a host|not a valid URL/],
  ['rtsp://%2e%2e/etc', /host must be an IP address or a DNS name/],
  ['srt://10.0.0.1', /needs a port/],
  ['', /must not be empty/],
];

for (const [url, why] of rejected) {
  t.test(`refuses ${JSON.stringify(url)}`, async (t) => {
    t.throws(() => parseCameraUrl(url), why);
  });
}

t.test('accepts the protocols of the registry and splits credentials off', async (t) => {
  const p = parseCameraUrl('rtsp://admin:p%40ss:w0rd@10.1.2.3:554/Streaming/Channels/101?transport=tcp');
  t.equal(p.url, 'rtsp://10.1.2.3:554/Streaming/Channels/101?transport=tcp');
  t.equal(p.username, 'admin');
  t.equal(p.password, 'p@ss:w0rd');
  t.equal(displayUrl(p.url, p.username, true), 'rtsp://admin:***@10.1.2.3:554/Streaming/Channels/101?transport=tcp');
  const srt = parseCameraUrl('srt://10.0.0.9:9000?streamid=cam1&passphrase=verysecretphrase');
  t.equal(srt.url, 'srt://10.0.0.9:9000?streamid=cam1');
  t.equal(srt.password, 'verysecretphrase');
  t.notMatch(displayUrl(srt.url, srt.username, true), /verysecret/);
  for (const u of ['rtsps://10.0.0.1/a', 'rtmp://10.0.0.1/live/a', 'rtmps://cam.example.org/live/a', 'https://cdn.example.org/live/a.m3u8', 'http://[fd00::5]:8080/live/a.flv']) {
    t.doesNotThrow(() => parseCameraUrl(u), u);
  }
});

t.test('protocol follows the scheme, and HTTP needs to say HLS or FLV', async (t) => {
  t.equal(protocolFor(parseCameraUrl('http://10.0.0.1/a.m3u8'), undefined), 'hls');
  t.equal(protocolFor(parseCameraUrl('http://10.0.0.1/a.flv'), undefined), 'http-flv');
  t.match(protocolFor(parseCameraUrl('http://10.0.0.1/a'), undefined), /cannot tell/);
  t.match(protocolFor(parseCameraUrl('rtsp://10.0.0.1/a'), 'hls'), /does not match/);
});

t.test('network policy: deny wins, an allow-list admits only its networks', async (t) => {
  const p = new NetworkPolicy({ allow: ['10.0.0.0/8', 'fd00::/8'], deny: ['10.66.0.0/16', '169.254.0.0/16'] });
  t.equal(p.check('10.1.2.3'), null);
  t.match(p.check('10.66.1.1'), /denied/);
  t.match(p.check('192.168.1.1'), /outside the allowed/);
  t.equal(p.check('fd00::1'), null);
  const resolveTo = (addrs: string[]) => async () => addrs;
  t.equal(await checkHost('cam.local', p, resolveTo(['10.2.2.2'])), null);
  t.match(await checkHost('metadata.internal', p, resolveTo(['169.254.169.254'])), /denied/);
  t.match(await checkHost('nowhere', p, async () => Promise.reject(new Error('ENOTFOUND'))), /does not resolve/);
  const open = new NetworkPolicy({ allow: [], deny: ['169.254.0.0/16'] });
  t.equal(await checkHost('nowhere', open, async () => Promise.reject(new Error('ENOTFOUND'))), null, 'no allow-list: checked again at connect time');
});

t.test('gb28181:// is a channel of a registered device, exactly: two 20-digit ids and an optional ?stream=1, nothing else', async (t) => {
  const main = parseCameraUrl('gb28181://34020000001320000001/34020000001310000001');
  t.match(main, { url: 'gb28181://34020000001320000001/34020000001310000001', scheme: 'gb28181', host: '34020000001320000001', username: null, password: null });
  t.equal(protocolFor(main, undefined), 'gb28181');
  t.match(protocolFor(main, 'rtsp'), /does not match/);
  t.same(parseGbUrl('gb28181://34020000001320000001/34020000001310000001?stream=1'), { deviceId: '34020000001320000001', channelId: '34020000001310000001', sub: true });
  for (const bad of [
    'gb28181://3402000000132000000/34020000001310000001',
    'gb28181://34020000001320000001/340200000013100000012',
    'gb28181://34020000001320000001/34020000001310000001/',
    'gb28181://34020000001320000001/34020000001310000001?stream=2',
    'gb28181://34020000001320000001/34020000001310000001?stream=1&x=1',
    'gb28181://34020000001320000001/34020000001310000001#x',
    'gb28181://user:pass@34020000001320000001/34020000001310000001',
    'gb28181://34020000001320000001:5060/34020000001310000001',
    'gb28181://10.0.0.1/34020000001310000001',
    'gb28181://localhost/34020000001310000001',
    'gb28181://34020000001320000001',
    'gb28181:///34020000001310000001',
    'gb28181://３４020000001320000001/34020000001310000001',
  ]) {
    t.throws(() => parseCameraUrl(bad), /a GB\/T 28181 channel is gb28181:\/\/<device id>\/<channel id>|white space/, bad);
    t.equal(parseGbUrl(bad), null, `${bad} is no GB channel`);
  }
  t.throws(() => parseCameraUrl('gb28181:34020000001320000001/34020000001310000001'), /expected gb28181:\/\/host/);
});

t.test('jt1078:// is a vehicle channel, exactly: a vehicle id, a channel 1-64 and an optional ?stream=1, nothing else', async (t) => {
  const main = parseCameraUrl('jt1078://demo-v0001/1');
  t.match(main, { url: 'jt1078://demo-v0001/1', scheme: 'jt1078', host: 'demo-v0001', username: null, password: null });
  t.equal(protocolFor(main, undefined), 'jt1078');
  t.equal(protocolFor(main, 'rtsp'), '"rtsp" does not match a jt1078:// URL (expected jt1078)');
  t.same(parseJtUrl('jt1078://demo-v0001/64?stream=1'), { vehicleId: 'demo-v0001', channel: 64, sub: true });
  t.same(parseJtUrl('jt1078://bus_7.a:b/12'), { vehicleId: 'bus_7.a:b', channel: 12, sub: false }, 'every character a vehicle id may hold');
  t.equal(jtUrl('v1', 3), 'jt1078://v1/3');
  t.equal(jtUrl('v1', 3, true), 'jt1078://v1/3?stream=1');
  t.same(parseJtUrl(jtUrl('v1', 3, true)), { vehicleId: 'v1', channel: 3, sub: true }, 'jtUrl and parseJtUrl agree');
  for (const bad of [
    'jt1078://v1/0',
    'jt1078://v1/65',
    'jt1078://v1/01',
    'jt1078://v1/100',
    'jt1078://v1/1/',
    'jt1078://v1/1?stream=0',
    'jt1078://v1/1?stream=1&x=1',
    'jt1078://v1/1#x',
    'jt1078://user:pass@v1/1',
    'jt1078://v1',
    'jt1078:///1',
    'jt1078://-v1/1',
    `jt1078://${'v'.repeat(65)}/1`,
    'jt1078://车辆/1',
  ]) {
    t.throws(() => parseCameraUrl(bad), /a JT\/T 1078 channel is jt1078:\/\/<vehicle id>\/<channel 1-64>/, bad);
    t.equal(parseJtUrl(bad), null, `${bad} is no vehicle channel`);
  }
  t.throws(() => parseCameraUrl('jt1078:v1/1'), /expected jt1078:\/\/host/);
});
