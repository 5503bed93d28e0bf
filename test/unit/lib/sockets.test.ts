import { Duplex } from 'node:stream';
import t from 'tap';
import { ConnectionCaps, plainAddress, whileConnected } from '../../../gateway/src/lib/sockets.js';

/** A socket stand-in whose client side the test ends or drops. */
function clientSocket() {
  const socket = new Duplex({ read() {}, write: (_c, _e, cb) => cb(), allowHalfOpen: true });
  socket.resume();
  return socket;
}

/** The client sends its FIN and Node has seen it ('end' emitted). */
async function halfClose(socket: Duplex) {
  const ended = new Promise((resolve) => socket.once('end', resolve));
  socket.push(null);
  await ended;
}

function deferred<T>() {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((res) => (resolve = res));
  return { promise, resolve };
}

t.test('an HTTP client that half-closes after its request still gets the answer', async (t) => {
  t.test('half-closing while the work runs', async (t) => {
    const socket = clientSocket();
    const work = deferred<string>();
    const waiting = whileConnected(socket, work.promise);
    await halfClose(socket);
    work.resolve('live');
    t.same(await waiting, { value: 'live' });
  });
  t.test('half-closed before the wait begins', async (t) => {
    const socket = clientSocket();
    await halfClose(socket);
    t.same(await whileConnected(socket, Promise.resolve('live')), { value: 'live' });
  });
});

t.test('an HTTP client whose connection closes is gone at once, before the work ends', async (t) => {
  const socket = clientSocket();
  const work = deferred<string>();
  const waiting = whileConnected(socket, work.promise);
  socket.destroy();
  t.equal(await waiting, null);
  work.resolve('live');
});

t.test('an upgrading client that half-closes is gone (Node no longer watches its end)', async (t) => {
  t.test('half-closing while the work runs', async (t) => {
    const socket = clientSocket();
    const work = deferred<string>();
    const waiting = whileConnected(socket, work.promise, { upgrade: true });
    await halfClose(socket);
    t.equal(await waiting, null, 'the wait ends without the work');
    work.resolve('live');
  });
  t.test('half-closed before the wait begins', async (t) => {
    const socket = clientSocket();
    await halfClose(socket);
    t.equal(await whileConnected(socket, new Promise<string>(() => {}), { upgrade: true }), null);
  });
});

t.test("a rejection of the work reaches the caller while the client is there", async (t) => {
  const socket = clientSocket();
  await t.rejects(whileConnected(socket, Promise.reject(new Error('no camera'))), { message: 'no camera' });
});

t.test('connection caps: in all and per address, and a closed connection frees its place', async (t) => {
  const caps = new ConnectionCaps({ max: 3, maxPerAddress: 2 });
  t.ok(caps.admit('10.0.0.1'));
  t.ok(caps.admit('10.0.0.1'));
  t.notOk(caps.admit('10.0.0.1'), 'a third from one address is refused');
  t.ok(caps.admit('10.0.0.2'));
  t.notOk(caps.admit('10.0.0.3'), 'past the total, any address is refused');
  t.equal(caps.size, 3, 'refusals count nothing');
  caps.release('10.0.0.1');
  t.ok(caps.admit('10.0.0.3'), 'a closed connection frees a place in all');
  t.notOk(caps.admit('10.0.0.4'));
  caps.release('10.0.0.2');
  caps.release('10.0.0.3');
  t.ok(caps.admit('10.0.0.1'), 'and from its address');
  t.equal(caps.size, 2);
});

t.test('a dual-stack socket\'s IPv4 peer has one address, as other sockets see it', async (t) => {
  t.equal(plainAddress('::ffff:10.0.0.1'), '10.0.0.1');
  t.equal(plainAddress('10.0.0.1'), '10.0.0.1');
  t.equal(plainAddress('::ffff:abcd'), '::ffff:abcd', 'an IPv6 address is left alone');
  t.equal(plainAddress(undefined), '', 'a destroyed socket has none');
});
