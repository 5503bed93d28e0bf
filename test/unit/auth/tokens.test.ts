import t from 'tap';
import { createSigner } from 'fast-jwt';
import { TokenService } from '../../../gateway/src/auth/tokens.js';

const key = Buffer.alloc(32, 7);
const tokens = new TokenService(key, 3600);
/** A token as the gateway signed them before sign-out existed: no session id, no millisecond issue time. */
const legacySigner = createSigner({ key, algorithm: 'HS256', expiresIn: 3600_000, iss: 'wallgate', aud: 'wallgate-api' });

t.test('a token carries its session through verification', async (t) => {
  const { token } = tokens.issue({ sub: 'u1', tv: 3, sid: 'session-a' });
  const v = tokens.verify(token);
  t.equal(v?.sid, 'session-a');
  t.equal(v?.tv, 3);
  t.ok(v && Math.abs(v.issuedAt - Date.now()) < 5000, 'issued now, in ms');
});

t.test('a token from before sign-out existed stays valid, with a session of its own to sign out', async (t) => {
  const a = legacySigner({ sub: 'u1', tv: 3 });
  const b = legacySigner({ sub: 'u1', tv: 3, nonce: 'another sign-in' });
  const va = tokens.verify(a);
  t.ok(va, 'accepted');
  t.match(va?.sid, /^legacy-/);
  t.equal(tokens.verify(a)?.sid, va?.sid, 'the same session each time it is shown');
  t.not(tokens.verify(b)?.sid, va?.sid, 'another token is another session');
  t.equal(va!.issuedAt % 1000, 0, 'issued at its whole-second iat');
});

t.test('anything half-formed or foreign is refused', async (t) => {
  t.equal(tokens.verify(legacySigner({ sub: 'u1', tv: 3, sid: 'x' })), null, 'a session id without its issue time');
  t.equal(tokens.verify(legacySigner({ sub: 'u1', tv: 3, ims: Date.now() })), null, 'an issue time without a session');
  t.equal(tokens.verify(legacySigner({ sub: 'u1' })), null, 'no token version');
  const other = createSigner({ key: Buffer.alloc(32, 8), algorithm: 'HS256', expiresIn: 3600_000, iss: 'wallgate', aud: 'wallgate-api' });
  t.equal(tokens.verify(other({ sub: 'u1', tv: 3, sid: 's', ims: Date.now() })), null, 'another key');
});
