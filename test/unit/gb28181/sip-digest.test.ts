import { createHash } from 'node:crypto';
import t from 'tap';
import { NonceStore, digestResponse, parseDigestParams, sameDigest } from '../../../gateway/src/gb28181/sip/digest.js';

const md5 = (s: string) => createHash('md5').update(s).digest('hex');

t.test("RFC 2617 §3.5's worked example (qop=auth) gives its published response", async (t) => {
  const header =
    'Digest username="Mufasa", realm="testrealm@host.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", uri="/dir/index.html", qop=auth, nc=00000001, cnonce="0a4f113b", response="6629fae49393a05397450978507c4ef1", opaque="5ccc069c403ebaf9f0171e9517f40e41"';
  const p = parseDigestParams(header);
  t.same(p, {
    username: 'Mufasa',
    realm: 'testrealm@host.com',
    nonce: 'dcd98b7102dd2f0e8b11d0f600bfb0c093',
    uri: '/dir/index.html',
    qop: 'auth',
    nc: '00000001',
    cnonce: '0a4f113b',
    response: '6629fae49393a05397450978507c4ef1',
    opaque: '5ccc069c403ebaf9f0171e9517f40e41',
  });
  const response = digestResponse({ username: p.username!, realm: p.realm!, password: 'Circle Of Life', method: 'GET', uri: p.uri!, nonce: p.nonce!, qop: p.qop!, nc: p.nc!, cnonce: p.cnonce! });
  t.equal(response, '6629fae49393a05397450978507c4ef1');
  t.ok(sameDigest(response, p.response!.toUpperCase()), 'hex case does not matter');
  t.notOk(sameDigest(response, 'short'));
});

t.test('a GB REGISTER without qop matches the formula HA1:nonce:HA2 computed here independently', async (t) => {
  const v = { username: '34020000001320000001', realm: '3402000000', password: '12345678', method: 'REGISTER', uri: 'sip:34020000002000000001@3402000000', nonce: 'e1f5a0' };
  const ha1 = md5(`${v.username}:${v.realm}:${v.password}`);
  const ha2 = md5(`REGISTER:${v.uri}`);
  t.equal(digestResponse(v), md5(`${ha1}:${v.nonce}:${ha2}`));
  t.not(digestResponse({ ...v, password: '12345679' }), digestResponse(v), 'a wrong password gives another response');
  t.not(digestResponse({ ...v, uri: 'sip:3402000000' }), digestResponse(v), 'the uri is part of it');
  const withQop = digestResponse({ ...v, qop: 'auth', nc: '00000002', cnonce: 'c0ffee' });
  t.equal(withQop, md5(`${ha1}:${v.nonce}:00000002:c0ffee:auth:${ha2}`));
});

t.test('digest parameters: unquoted values, escapes, spacing, mixed-case keys', async (t) => {
  t.same(parseDigestParams('Digest realm="3402000000",nonce="a\\"b", algorithm=MD5 ,QOP="auth"'), { realm: '3402000000', nonce: 'a"b', algorithm: 'MD5', qop: 'auth' });
  t.same(parseDigestParams('digest username="x, y", uri="sip:a@b"'), { username: 'x, y', uri: 'sip:a@b' }, 'a comma inside quotes belongs to the value');
  t.same(parseDigestParams('Basic'), {});
});

t.test('nonces: good once without qop, increasing nc with qop, stale after the TTL, forged ones unknown', async (t) => {
  let now = 1_700_000_000_000;
  const store = new NonceStore(60_000, () => now);
  const a = store.issue();
  t.match(a, /^[0-9a-f]{44}$/, 'hex only: some devices choke on anything else');
  t.equal(store.check(a, undefined), 'ok');
  t.equal(store.check(a, undefined), 'replayed', 'without qop a nonce is used once');
  t.equal(store.check(a, '00000002'), 'replayed', 'nor may qop revive it');

  const b = store.issue();
  t.equal(store.check(b, '00000001'), 'ok');
  t.equal(store.check(b, '00000002'), 'ok', 'with qop, a higher nc is a new use');
  t.equal(store.check(b, '00000002'), 'replayed');
  t.equal(store.check(b, '00000001'), 'replayed');
  t.equal(store.check(b, undefined), 'replayed');
  t.equal(store.check(b, 'zz'), 'unknown');

  t.not(store.issue(), store.issue(), 'every nonce differs');
  const forged = a.slice(0, 28) + '0'.repeat(16);
  t.equal(store.check(forged, undefined), 'unknown', 'a nonce without our signature');
  t.equal(store.check('e1f5', undefined), 'unknown');
  t.equal(new NonceStore(60_000, () => now).check(store.issue(), undefined), 'unknown', "another store's (a restarted gateway's) nonce");

  const c = store.issue();
  now += 60_001;
  t.equal(store.check(c, undefined), 'stale', 'past the TTL');
  t.equal(store.size, 0, 'used nonces past the TTL are forgotten');
});

t.test('memory stays bounded and a forgotten nonce is never accepted again', async (t) => {
  let now = 1_700_000_000_000;
  const store = new NonceStore(60_000, () => now, 100);
  const early = store.issue();
  const nonces: string[] = [];
  for (let i = 0; i < 150; i++) {
    now += 1;
    nonces.push(store.issue());
  }
  for (const n of nonces) t.equal(store.check(n, undefined), 'ok');
  t.equal(store.size, 100);
  t.equal(store.check(nonces[0]!, undefined), 'stale', 'used, then forgotten: not replayable, a fresh challenge instead');
  t.equal(store.check(early, undefined), 'stale', 'issued before a forgotten one and never seen: cannot be told apart, so stale');
  now += 1;
  t.equal(store.check(store.issue(), undefined), 'ok', 'new nonces still work');
});
