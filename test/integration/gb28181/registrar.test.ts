import { Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import t, { type Test } from 'tap';
import { buildGateway } from '../../../gateway/src/app.js';
import { parseDigestParams } from '../../../gateway/src/gb28181/sip/digest.js';
import { header } from '../../../gateway/src/gb28181/sip/message.js';
import { RegistrarClient } from '../../helpers/gb-registrar-client.js';
import { startGateway, type DeepPartial, type TestGateway } from '../../helpers/gateway.js';
import { waitFor } from '../../helpers/streams.js';
import type { Config } from '../../../gateway/src/config/schema.js';

const DEVICE = '34020000001320000001';
const PASSWORD = 'device-secret-1';

async function gbGateway(test: Test, gb: DeepPartial<Config['gb28181']> = {}): Promise<TestGateway> {
  const gw = await startGateway(test, { gb28181: gb });
  const res = await gw.api('POST', '/api/gb28181/devices', { token: gw.adminToken, body: { id: DEVICE, name: 'Gate camera', departmentId: 'root', password: PASSWORD } });
  if (res.status !== 201) throw new Error(`add device: ${res.status} ${res.body}`);
  return gw;
}

/** The device as the admin pages show it. */
async function shownDevice(gw: TestGateway, id = DEVICE) {
  const res = await gw.api('GET', `/api/gb28181/devices/${id}`, { token: gw.adminToken });
  if (res.status !== 200) throw new Error(`device: ${res.status} ${res.body}`);
  return res.json;
}

const device = (test: Test, gw: TestGateway, o: { id?: string; password?: string; transport?: 'udp' | 'tcp' } = {}) =>
  RegistrarClient.start(test, {
    id: o.id ?? DEVICE,
    password: o.password ?? PASSWORD,
    gateway: { port: (o.transport === 'tcp' ? gw.gb28181!.ports.tcpPort : gw.gb28181!.ports.udpPort)!, transport: o.transport ?? 'udp' },
  });

/** The refused list as the admin pages show it. */
async function refusals(gw: TestGateway): Promise<{ deviceId: string; reason: string; count: number; address: string }[]> {
  const res = await gw.api('GET', '/api/gb28181/refused', { token: gw.adminToken });
  if (res.status !== 200) throw new Error(`refused: ${res.status} ${res.body}`);
  return res.json.items;
}

t.test('REGISTER with digest: the 401 challenge, then 200 with Date and Expires; the device is online where it registered from', async (t) => {
  const gw = await gbGateway(t);
  for (const transport of ['udp', 'tcp'] as const) {
    const dev = await device(t, gw, { transport });
    const challenge = await dev.registerRaw([['Expires', '3600']]);
    t.equal(challenge.status, 401, `${transport}: the first REGISTER is challenged`);
    const c = parseDigestParams(header(challenge, 'WWW-Authenticate') ?? '');
    t.same({ realm: c.realm, algorithm: c.algorithm, qop: c.qop }, { realm: gw.config.gb28181.domain, algorithm: 'MD5', qop: 'auth' }, 'realm is our domain; MD5; qop auth offered');
    const ok = await dev.registerRaw([
      ['Expires', '3600'],
      ['Authorization', dev.authorization(challenge)],
    ]);
    t.equal(ok.status, 200, `${transport}: registered`);
    t.match(header(ok, 'Date'), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}$/, 'Date in the GB form, for the device clock');
    t.equal(header(ok, 'Expires'), '3600');
    t.ok(gw.gb28181!.isOnline(DEVICE));
    const shown = await waitFor(() => shownDevice(gw), (d) => d.transport === transport, 3_000, 50, 'the registration written');
    t.equal(shown.online, true);
    t.equal(shown.address, '127.0.0.1');
    t.notOk(JSON.stringify(shown).includes(PASSWORD), 'the password is never shown');
    await dev.close();
  }
  t.notOk(gw.logs.join('').includes(PASSWORD), 'nor logged');
});

t.test('digest without qop, and over the uri the device chose (domain only): both accepted', async (t) => {
  const gw = await gbGateway(t);
  const dev = await device(t, gw);
  const challenge = await dev.registerRaw();
  const ok = await dev.registerRaw([['Authorization', dev.authorization(challenge, { qop: false, uri: `sip:${gw.config.gb28181.domain}` })]]);
  t.equal(ok.status, 200);
});

t.test('a wrong password is refused with 403 and listed with its address and count', async (t) => {
  const gw = await gbGateway(t);
  const dev = await device(t, gw, { password: 'not-the-password' });
  for (let i = 0; i < 2; i++) t.equal((await dev.register()).status, 403);
  t.notOk(gw.gb28181!.isOnline(DEVICE));
  const listed = (await refusals(gw)).find((r) => r.deviceId === DEVICE);
  t.match(listed, { reason: 'password', count: 2, address: '127.0.0.1' });
});

t.test('an unknown device is refused with 403 and shows in the refused list, however well it answers the challenge', async (t) => {
  const gw = await gbGateway(t);
  const stranger = '34020000001320000099';
  const dev = await device(t, gw, { id: stranger });
  t.equal((await dev.register()).status, 403);
  t.equal((await dev.register()).status, 403);
  t.match(
    (await refusals(gw)).find((r) => r.deviceId === stranger),
    { reason: 'unknown', count: 2, address: '127.0.0.1' },
  );
  t.equal(gw.gb28181!.refusals.unknown, 2, 'counted for the metrics');
  const metrics = await gw.api('GET', '/metrics');
  t.match(metrics.body, /wallgate_gb28181_refusals_total\{reason="unknown"\} 2/);
});

t.test('an admission rule admits a device under its prefix only once it proves the rule password; wrong guesses write no device', async (t) => {
  const gw = await gbGateway(t);
  const rule = await gw.api('POST', '/api/gb28181/rules', { token: gw.adminToken, body: { prefix: '3402000000132001', departmentId: 'root', password: 'rule-secret-1' } });
  t.equal(rule.status, 201, rule.body);
  const newcomer = '34020000001320010001';
  const guesser = await device(t, gw, { id: newcomer, password: 'a-guess' });
  t.equal((await guesser.register()).status, 403);
  t.equal((await gw.api('GET', `/api/gb28181/devices/${newcomer}`, { token: gw.adminToken })).status, 404, 'a failed guess under the prefix creates no device');
  t.match((await refusals(gw)).find((r) => r.deviceId === newcomer), { reason: 'password', count: 1 });
  await guesser.close();
  const real = await device(t, gw, { id: newcomer, password: 'rule-secret-1' });
  t.equal((await real.register()).status, 200);
  t.match(await shownDevice(gw, newcomer), { origin: 'rule', departmentId: 'root', online: true });
});

t.test('a nonce past its TTL gets a fresh challenge with stale=true; a replayed one never registers', async (t) => {
  const gw = await gbGateway(t, { nonceTtlMs: 1_000 });
  const dev = await device(t, gw);
  const old = await dev.registerRaw();
  await sleep(1_200);
  const stale = await dev.registerRaw([['Authorization', dev.authorization(old)]]);
  t.equal(stale.status, 401, 'stale nonce: challenged again');
  t.equal(parseDigestParams(header(stale, 'WWW-Authenticate') ?? '').stale, 'true');
  t.not(parseDigestParams(header(stale, 'WWW-Authenticate') ?? '').nonce, parseDigestParams(header(old, 'WWW-Authenticate') ?? '').nonce, 'with a new nonce');
  t.notOk(gw.gb28181!.isOnline(DEVICE));

  const fresh = await dev.registerRaw();
  const auth = dev.authorization(fresh, { nc: '00000001' });
  t.equal((await dev.registerRaw([['Authorization', auth]])).status, 200, 'first use');
  // The same Authorization again (a captured request replayed): a new transaction, the same nonce and nc.
  const replay = await dev.registerRaw([['Authorization', auth]]);
  t.equal(replay.status, 401, 'the replay is challenged, not registered');
  t.equal((await dev.registerRaw([['Authorization', dev.authorization(fresh, { nc: '00000002' })]])).status, 200, 'the same nonce with a higher nc is a legitimate reuse (qop auth)');
  const once = await dev.registerRaw();
  const noQop = dev.authorization(once, { qop: false });
  t.equal((await dev.registerRaw([['Authorization', noQop]])).status, 200);
  t.equal((await dev.registerRaw([['Authorization', noQop]])).status, 401, 'without qop a nonce is good once');
});

t.test('Expires: below the minimum is 423 with Min-Expires, above the maximum is cut, 0 unregisters', async (t) => {
  const gw = await gbGateway(t, { registerExpiresMinSec: 60, registerExpiresMaxSec: 7_200 });
  // A store with a round trip per write, as PostgreSQL: the registration's write (online) is the slowest,
  // so the unregistration's (offline) would overtake it on another pooled connection unless it waits.
  const gb = gw.store.gb;
  const setPresence = gb.setPresence.bind(gb);
  const latencies = [150, 10];
  let bothWritten!: () => void;
  const written = new Promise<void>((resolve) => (bothWritten = resolve));
  let writes = 0;
  gb.setPresence = async (id, presence, now) => {
    await sleep(latencies.shift() ?? 0);
    const ok = await setPresence(id, presence, now);
    if (++writes === 2) bothWritten();
    return ok;
  };
  const dev = await device(t, gw);
  const brief = await dev.register(30);
  t.equal(brief.status, 423);
  t.equal(header(brief, 'Min-Expires'), '60');
  t.notOk(gw.gb28181!.isOnline(DEVICE));
  const long = await dev.register(86_400);
  t.equal(long.status, 200);
  t.equal(header(long, 'Expires'), '7200');
  t.ok(gw.gb28181!.isOnline(DEVICE));
  const bye = await dev.register(0);
  t.equal(bye.status, 200);
  t.notOk(gw.gb28181!.isOnline(DEVICE));
  await written;
  t.equal((await shownDevice(gw)).online, false, 'stored offline: the later write is the one kept');
});

t.test('keepalives are answered 200 and keep the device online; from an unregistered device 403; silence takes it offline', async (t) => {
  const gw = await gbGateway(t, { keepaliveIntervalSec: 1, keepaliveMissed: 2 });
  const dev = await device(t, gw);
  t.equal((await dev.keepalive()).status, 403, 'not registered yet: refused, so the device registers');
  t.equal((await dev.register()).status, 200);
  for (let i = 0; i < 4; i++) {
    await sleep(700);
    t.equal((await dev.keepalive()).status, 200);
  }
  t.ok(gw.gb28181!.isOnline(DEVICE), 'still online after 2.8 s of keepalives every 0.7 s');
  const before = (await shownDevice(gw)).lastKeepaliveAt;
  t.ok(before, 'the last keepalive is shown');
  const stopped = Date.now();
  await waitFor(() => gw.gb28181!.isOnline(DEVICE), (online) => !online, 5_000, 50, 'offline after two missed keepalives');
  const after = Date.now() - stopped;
  t.ok(after >= 1_800, `not before 2 × 1 s of silence (${after} ms)`);
  await waitFor(() => shownDevice(gw), (d) => !d.online, 3_000, 50, 'shown offline');
  t.equal((await dev.keepalive()).status, 403, 'a keepalive after that is refused: the device must register again');
});

t.test('a MESSAGE naming a registered device from anywhere but where it registered is refused and changes nothing', async (t) => {
  const gw = await gbGateway(t, { keepaliveIntervalSec: 1, keepaliveMissed: 2 });
  const dev = await device(t, gw, { transport: 'tcp' });
  t.equal((await dev.register()).status, 200);
  const spoofer = await device(t, gw, { transport: 'udp', password: 'unknown-to-the-spoofer' });
  t.equal((await spoofer.keepalive()).status, 403, 'a keepalive with the id over another transport');
  const otherConnection = await device(t, gw, { transport: 'tcp', password: 'unknown-to-the-spoofer' });
  t.equal((await otherConnection.keepalive()).status, 403, 'and over another TCP connection');
  t.equal((await dev.keepalive()).status, 200, "the device's own keepalive is taken");
  await dev.close();
  // Only the spoofer speaks now: the device must still go offline.
  await waitFor(
    async () => {
      await spoofer.keepalive();
      return gw.gb28181!.isOnline(DEVICE);
    },
    (online) => !online,
    6_000,
    200,
    'offline despite the spoofed keepalives',
  );
  t.pass('spoofed keepalives kept nothing alive');
});

t.test('disabling a device, or deleting it, ends the registration it holds: its keepalives are refused at once', async (t) => {
  const gw = await gbGateway(t);
  const dev = await device(t, gw);
  t.equal((await dev.register()).status, 200);
  t.equal((await gw.api('PATCH', `/api/gb28181/devices/${DEVICE}`, { token: gw.adminToken, body: { enabled: false } })).status, 200);
  await waitFor(() => gw.gb28181!.isOnline(DEVICE), (online) => !online, 3_000, 20, 'offline once disabled');
  t.equal((await dev.keepalive()).status, 403, 'its keepalive is refused');
  t.equal((await dev.register()).status, 403, 'and it cannot register again');
  t.equal((await gw.api('PATCH', `/api/gb28181/devices/${DEVICE}`, { token: gw.adminToken, body: { enabled: true } })).status, 200);
  t.equal((await dev.register()).status, 200);
  t.equal((await gw.api('DELETE', `/api/gb28181/devices/${DEVICE}`, { token: gw.adminToken })).status, 204);
  await waitFor(() => gw.gb28181!.isOnline(DEVICE), (online) => !online, 3_000, 20, 'offline once deleted');
  t.equal((await dev.keepalive()).status, 403);
});

t.test('after a restart a device shows offline until it registers again', async (t) => {
  const gw = await gbGateway(t);
  const dev = await device(t, gw);
  t.equal((await dev.register()).status, 200);
  await waitFor(() => shownDevice(gw), (d) => d.online, 3_000, 50, 'shown online');
  await gw.close();
  const again = await buildGateway(gw.config, { logStream: new Writable({ write: (_c, _e, done) => done() }) });
  t.teardown(() => again.close());
  t.equal((await again.store.gb.getDevice(DEVICE))?.online, false, 'the registration before the restart is not trusted');
});
