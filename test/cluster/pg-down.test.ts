/**
 * PostgreSQL going away under a running gateway (store.engine postgres): writes fail with 503
 * GW_ERR_UNAVAILABLE naming the database (never its password), live video keeps flowing, and the
 * same write succeeds once PostgreSQL is back, with no restart of the gateway.
 */
import t from 'tap';
import { needsCluster, ownPostgres } from '../helpers/cluster.js';
import { startStreamingGateway, waitFor } from '../helpers/streams.js';

const PASSWORD = 'pg-secret-Xq7v';

t.test('PostgreSQL down: writes refused as unavailable, video goes on, writes work again when it is back', needsCluster(), async (t) => {
  const pg = await ownPostgres(t, PASSWORD);
  const gw = await startStreamingGateway(t, {}, {}, {
    store: { engine: 'postgres', postgres: { url: pg.url, poolSize: 4, connectTimeoutMs: 1_000, statementTimeoutMs: 2_000 } },
  });
  await gw.addCamera('gate', { clip: 'h264-360p-1s' });
  const urls = await gw.view('gate');
  const sequence = async () => {
    const res = await fetch(urls.hls);
    const m = /#EXT-X-MEDIA-SEQUENCE:(\d+)/.exec(await res.text());
    return res.status === 200 && m ? Number(m[1]) : -1;
  };
  const first = await waitFor(sequence, (n) => n >= 0, 15_000, 200, 'a live HLS playlist');

  await pg.stop();
  const body = { id: 'yard', name: 'Yard', departmentId: 'root', url: 'rtsp://10.0.0.9/yard' };
  const refused = await gw.api('POST', '/api/sources', { token: gw.adminToken, body });
  t.equal(refused.status, 503, 'a write while PostgreSQL is down is refused as unavailable');
  t.match(refused.json, { code: 'GW_ERR_UNAVAILABLE', message: /database is unreachable/, params: { reason: 'database', address: `127.0.0.1:${pg.port}/postgres` } });
  t.notMatch(refused.body, PASSWORD, 'no password in the response');

  const advanced = await waitFor(sequence, (n) => n > first + 1, 10_000, 200, 'the HLS playlist to advance while PostgreSQL is down');
  t.ok(advanced > first + 1, 'the playlist keeps advancing');

  await pg.start();
  const created = await waitFor(
    () => gw.api('POST', '/api/sources', { token: gw.adminToken, body }),
    (r) => r.status !== 503,
    10_000,
    200,
    'the write to succeed once PostgreSQL is back',
  );
  t.equal(created.status, 201, 'the same write succeeds once PostgreSQL is back');
  t.match((await gw.api('GET', '/api/sources/yard', { token: gw.adminToken })).json, { id: 'yard', name: 'Yard' });

  const log = gw.logs.join('');
  t.match(log, /the database is unreachable/, 'the outage is logged');
  t.notMatch(log, PASSWORD, 'no password in the log');
  t.notMatch(log, encodeURIComponent(PASSWORD), 'not even URL-encoded');
});
