import t from 'tap';
import { ControlClient } from '../../../scripts/sim/control-client.js';
import { tempDir } from '../../helpers/gateway.js';
import { spawnGateway } from '../../helpers/process.js';

async function rest(baseUrl: string, token: string, method: string, path: string, body?: unknown) {
  const res = await fetch(`${baseUrl}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    ...(body ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  return { status: res.status, json: (text ? JSON.parse(text) : null) as any };
}

const popupsOf = (c: ControlClient) => Object.values(c.walls.get('hall')?.popups ?? {}) as { alarmId: string }[];

async function until(what: string, ok: () => boolean | Promise<boolean>, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  while (!(await ok())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

t.test('after kill -9: open alarms keep their pop-ups, hold timers run on, positions and vehicles are back', async (t) => {
  const dataDir = tempDir(t);
  const first = await spawnGateway(t, dataDir);
  const login = await fetch(`${first.baseUrl}/api/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'admin', password: first.adminPassword }) });
  const token = ((await login.json()) as { token: string }).token;
  for (const id of ['v1-ch1', 'v2-ch1']) t.equal((await rest(first.baseUrl, token, 'POST', '/api/sources', { id, name: id, departmentId: 'root', url: 'rtsp://10.2.0.1:554/live' })).status, 201);
  for (const [id, plate] of [['v1', '粤A11111'], ['v2', '粤A22222']]) {
    t.equal((await rest(first.baseUrl, token, 'POST', '/api/vehicles', { id, plate, category: 'passenger', company: 'C', departmentId: 'root', channels: [{ channel: 1, name: 'front', sourceId: `${id}-ch1` }] })).status, 201);
  }
  t.equal((await rest(first.baseUrl, token, 'POST', '/api/walls', { id: 'hall', name: 'Hall', departmentId: 'root', screens: { rows: 1, cols: 2, width: 1920, height: 1080 }, layout: '4' })).status, 201);
  const rule = (id: string, tile: string, holdSec: number, type: string) =>
    rest(first.baseUrl, token, 'POST', '/api/linkage-rules', { id, name: id, departmentId: 'root', wallId: 'hall', tileIds: [tile], priority: 50, holdSec, match: { types: [type] } });
  t.equal((await rule('until-closed', 's2-1', 0, 'leak')).status, 201);
  t.equal((await rule('six-seconds', 's2-2', 6, 'overspeed')).status, 201);
  const now = Date.now();
  await rest(first.baseUrl, token, 'POST', '/api/feed/positions', { positions: [{ vehicleId: 'v1', lat: 32.1, lon: 118.7, speed: 30, heading: 10, at: now }] });
  const a = await rest(first.baseUrl, token, 'POST', '/api/feed/alarms', { alarms: [{ vehicleId: 'v1', type: 'leak', severity: 'critical', at: now }] });
  const raisedB = Date.now();
  const b = await rest(first.baseUrl, token, 'POST', '/api/feed/alarms', { alarms: [{ vehicleId: 'v2', type: 'overspeed', severity: 'high', at: now }] });
  const [alarmA, alarmB] = [a.json.raised[0], b.json.raised[0]];
  await until('both pop-ups', async () => Object.keys((await rest(first.baseUrl, token, 'GET', '/api/walls/hall')).json.wall.popups).length === 2, 5_000);
  first.child.kill('SIGKILL');
  await first.exited;

  const second = await spawnGateway(t, dataDir);
  const screen = await ControlClient.connect(`${second.baseUrl.replace('http', 'ws')}/api/control`, token);
  t.teardown(() => screen.close());
  const wall = await screen.subscribe('hall');
  t.ok(Object.values(wall.popups).some((p) => p.alarmId === alarmA), 'the open alarm\'s pop-up is still on the wall');
  t.match(wall.tiles['s2-1'], { stream: { cameraId: 'v1-ch1' } });
  const until6 = (await rest(second.baseUrl, token, 'GET', `/api/alarms/${alarmB}`)).json.linkages[0].until as number;
  t.ok(until6 - raisedB >= 5_900 && until6 - raisedB < 8_000, 'the held pop-up is due off six seconds after its alarm');
  if (Date.now() < until6 - 500) t.ok(popupsOf(screen).some((p) => p.alarmId === alarmB), 'and is still on the wall before then');
  await until('the held pop-up to come off', () => !popupsOf(screen).some((p) => p.alarmId === alarmB), 12_000);
  t.ok(Date.now() >= until6 - 50, `the hold ran on across the restart: off ${Date.now() - until6} ms after it was due`);
  t.match((await rest(second.baseUrl, token, 'GET', `/api/alarms/${alarmB}`)).json, { state: 'raised', linkages: [{ endedAt: Number }] });

  const v1 = (await rest(second.baseUrl, token, 'GET', '/api/vehicles/v1')).json;
  t.match(v1, { plate: '粤A11111', live: { position: { lat: 32.1, lon: 118.7, at: now }, openAlarms: 1 } }, 'the last position came back from the track');
  const closed = await rest(second.baseUrl, token, 'POST', `/api/alarms/${alarmA}/close`, { note: 'after restart' });
  t.equal(closed.status, 200);
  await until('the wall to be clear', () => popupsOf(screen).length === 0, 5_000);
  t.equal(screen.walls.get('hall')!.tiles['s2-1']!.stream, null, 'the tile is given back');

  second.child.kill('SIGTERM');
  t.equal((await second.exited).code, 0, 'a clean stop');
});
