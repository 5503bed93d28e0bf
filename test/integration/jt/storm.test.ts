/**
 * A reconnect storm: a few hundred simulated terminals (scripts/sim/jt-terminal.ts) drop their
 * links at once, some while their channels play over JT/T 1078, and connect again at once, twice.
 * Every terminal is online again, each once, and the gateway is left with what it had before: no
 * terminal session, socket, timer or stream session more.
 */
import { createHook } from 'node:async_hooks';
import t from 'tap';
import { generateFleet } from '../../../gateway/src/vehicles/demo.js';
import { JtSimFleet } from '../../../scripts/sim/jt-terminal.js';
import { startGateway } from '../../helpers/gateway.js';
import { FAST_STREAMS, waitFor } from '../../helpers/streams.js';

const TERMINALS = 300;
const LIVE = 2;

/**
 * The process's live sockets and timers (gateway and simulator share it: both must return to where
 * they were), counted from their creation to their end: getActiveResourcesInfo() leaves out unref'd
 * timers, and a leaked one is a leak all the same.
 */
const live = new Map<number, string>();
createHook({
  init(id, type) {
    if (type === 'Timeout' || type === 'TCPWRAP' || type === 'UDPWRAP') live.set(id, type);
  },
  destroy(id) {
    live.delete(id);
  },
}).enable();
function handles() {
  let sockets = 0;
  let timers = 0;
  for (const type of live.values()) type === 'Timeout' ? timers++ : sockets++;
  return { sockets, timers };
}

t.test(`a storm of ${TERMINALS} terminals reconnecting at once, twice, leaves no session, socket or timer behind`, async (t) => {
  const gw = await startGateway(t, { streams: FAST_STREAMS });
  const fleet = generateFleet(TERMINALS);
  const ndjson = (lines: unknown[]) => lines.map((l) => JSON.stringify(l)).join('\n');
  const live = fleet.slice(0, LIVE);
  const sources = await gw.api('POST', '/api/sources/import?mode=all-or-nothing', {
    token: gw.adminToken,
    headers: { 'content-type': 'application/x-ndjson' },
    payload: ndjson(live.map((v) => ({ id: v.channels[0]!.sourceId, name: `${v.plate} front`, departmentId: 'root', url: `jt1078://${v.id}/1`, codec: 'h264' }))),
  });
  t.equal(sources.status, 200, `their channels registered${sources.status === 200 ? '' : `: ${sources.body}`}`);
  const vehicles = await gw.api('POST', '/api/vehicles/import?mode=all-or-nothing', {
    token: gw.adminToken,
    headers: { 'content-type': 'application/x-ndjson' },
    payload: ndjson(
      fleet.map((v, i) => ({
        id: v.id,
        plate: v.plate,
        category: v.category,
        ...(v.cargo ? { hazardClass: v.cargo.hazardClass, unNumber: v.cargo.unNumber } : {}),
        company: v.company,
        departmentId: 'root',
        terminalId: v.terminalId,
        sim: v.sim,
        channels: i < LIVE ? [v.channels[0]] : [],
      })),
    ),
  });
  t.equal(vehicles.status, 200, `${TERMINALS} vehicles registered${vehicles.status === 200 ? '' : `: ${vehicles.body.slice(0, 500)}`}`);

  const sims = new JtSimFleet({ host: '127.0.0.1', port: gw.jt808!.port!, vehicles: fleet, edition: 'mixed', positionIntervalMs: 0, clip: 'h264-360p-1s', subClip: 'h264-360p-1s' });
  t.teardown(() => sims.close());
  await sims.start();
  t.equal(sims.online, TERMINALS, 'every terminal registered and authenticated');
  const onlineAtGateway = () => fleet.filter((v) => gw.jt808!.terminal(v.id)?.online).length;
  const connections = () => gw.jt808!.connectionCount;
  await waitFor(onlineAtGateway, (n) => n === TERMINALS, 10_000, 50, 'the gateway to see every terminal online');
  // What the gateway and the simulator hold with every terminal connected and nothing playing.
  await waitFor(connections, (n) => n === TERMINALS, 5_000, 50, 'one connection per terminal');
  const before = handles();

  for (const round of [1, 2]) {
    // Channels playing while the links drop: their media links go with them.
    const leases = await Promise.all(live.map((v) => gw.streams.addReader({ cameraId: v.channels[0]!.sourceId, profile: 'main', kind: 'prewarm', userId: 'storm' })));
    await Promise.all(leases.map((l) => l.live()));
    t.ok(live.every((v) => sims.terminal(v.id)!.mediaInfo().length === 1), `round ${round}: the channels play`);

    const storm = await sims.reconnectStorm(30_000);
    t.equal(sims.online, TERMINALS, `round ${round}: every terminal authenticated again (${Math.round(storm.ms)} ms, ${storm.retries} retries)`);
    await waitFor(onlineAtGateway, (n) => n === TERMINALS, 10_000, 50, `round ${round}: the gateway to see every terminal online again`);
    await waitFor(connections, (n) => n === TERMINALS, 10_000, 50, `round ${round}: one connection per terminal, none left of the old ones`);

    for (const l of leases) l.release();
    await waitFor(() => gw.streams.list().length, (n) => n === 0, 10_000, 50, `round ${round}: the stream sessions closed`);
    // A leak grows with the terminals (a socket or timer each); the process must come back to where it
    // was: exactly its sockets, and no more timers (a one-off timer of the start, such as a playlist
    // poller's, may have run out meanwhile, and once did on a busy machine).
    await waitFor(handles, (h) => h.sockets === before.sockets && h.timers <= before.timers, 10_000, 50, `round ${round}: the sockets and timers of before (${JSON.stringify(before)})`);
  }
});
