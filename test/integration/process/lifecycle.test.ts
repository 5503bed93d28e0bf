import { spawn } from 'node:child_process';
import { connect, createServer, type AddressInfo } from 'node:net';
import t from 'tap';
import { defaultConfig } from '../../../gateway/src/config/load.js';
import { GatewayError } from '../../../gateway/src/errors.js';
import { StreamManager } from '../../../gateway/src/streams/manager.js';
import { FfmpegProcess } from '../../../gateway/src/streams/process/ffmpeg-process.js';
import { markedProcesses } from '../../../gateway/src/streams/process/sweep.js';
import type { ResolvedSource, SourceResolver } from '../../../gateway/src/streams/types.js';
import { SCREENS_2X2, startControlGateway } from '../../helpers/control.js';
import { tempDir } from '../../helpers/gateway.js';

const root = new URL('../../../', import.meta.url).pathname;
const quiet = { info: () => undefined, warn: () => undefined, error: () => undefined, debug: () => undefined };

t.test('a start that fails at its last step (the RTMP port taken) closes what it opened, and Node exits by itself', async (t) => {
  const dataDir = tempDir(t);
  const taken = createServer();
  await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
  t.teardown(() => taken.close());
  const port = String((taken.address() as AddressInfo).port);

  const child = spawn(process.execPath, ['--import', 'tsx', 'test/helpers/failed-start.ts', dataDir, port], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (out += d));
  // The child never calls process.exit: it ends only when nothing (timer, socket, server) is left to keep it alive.
  const exit = await new Promise<{ code: number | null; hung: boolean }>((resolve) => {
    let reported = false;
    child.stdout.on('data', () => {
      if (reported || !out.includes('\n')) return;
      reported = true;
      const hang = setTimeout(() => (child.kill('SIGKILL'), resolve({ code: null, hung: true })), 10_000);
      child.once('exit', (code) => (clearTimeout(hang), resolve({ code, hung: false })));
    });
    child.once('exit', (code) => !reported && resolve({ code, hung: false }));
  });
  const report = JSON.parse(out.split('\n')[0]!) as { built: boolean; error: string; open: string[] };
  t.equal(report.built, false);
  t.match(report.error, /RTMP ingest cannot listen on 127\.0\.0\.1:\d+ \(EADDRINUSE\)/, 'the start fails with its reason');
  t.same(report.open, [], 'no file of the data directory is held open: the database handle was released');
  t.same(exit, { code: 0, hung: false }, 'nothing left running (timers, sockets) keeps the process alive');
});

t.test('a reader that arrives while the gateway closes gets 503 and starts no session, even if close() runs while its source resolves', async (t) => {
  const dataDir = tempDir(t);
  let resolveSource!: (s: ResolvedSource) => void;
  let asked!: () => void;
  const resolving = new Promise<void>((r) => (asked = r));
  const resolver: SourceResolver = {
    resolve: () => (asked(), new Promise((r) => (resolveSource = r))),
    checkConnect: async () => ({ addresses: ['127.0.0.1'] }),
    setHealth: async () => undefined,
  };
  const streams = new StreamManager(defaultConfig().streams, dataDir, resolver, quiet);
  await streams.start();
  t.teardown(() => streams.close());

  const adding = streams.addReader({ cameraId: 'cam', profile: 'main', kind: 'hls', userId: 'u' });
  await resolving;
  const closing = streams.close();
  // The source resolves only after close() began: a session made now would have no owner.
  resolveSource({
    cameraId: 'cam',
    name: 'Cam',
    departmentId: 'root',
    deptPath: '/root/',
    profile: 'main',
    url: 'rtsp://127.0.0.1:9/stream',
    protocol: 'rtsp',
    codec: 'h264',
    enabled: true,
    credential: null,
  });
  const err = await adding.then(
    (lease) => (lease.release(), null),
    (e: unknown) => e,
  );
  t.ok(err instanceof GatewayError, 'the reader is refused');
  t.equal((err as GatewayError).code, 'GW_ERR_UNAVAILABLE');
  await closing;
  t.same(streams.list(), [], 'no session was created');
  t.equal(FfmpegProcess.running().size, 0, 'no ffmpeg object');
  t.same(await markedProcesses(streams.instanceId), [], 'and no ffmpeg in the process table');
  await t.rejects(streams.addReader({ cameraId: 'cam', profile: 'main', kind: 'hls', userId: 'u' }), { code: 'GW_ERR_UNAVAILABLE' }, 'and none after');
});

t.test('shutdown stops accepting before it lets go of the readers, and closes the store last', async (t) => {
  const gw = await startControlGateway(t);
  const wall = await gw.createWall({ id: 'hall', name: 'Hall', departmentId: 'root', screens: SCREENS_2X2, layout: '4' });
  const screen = await gw.client(gw.adminToken);
  await screen.subscribe(wall);
  const port = Number(new URL(gw.wsUrl).port);
  const seen: Record<string, unknown> = {};
  // Registered last, so the first of its phase to run: what a reader and the store see right after the listener closed.
  gw.lifecycle.own('readers', 'probe', async () => {
    seen.connect = await new Promise((resolve) => {
      const socket = connect(port, '127.0.0.1');
      socket.once('connect', () => (socket.destroy(), resolve('accepted')));
      socket.once('error', (e: NodeJS.ErrnoException) => resolve(e.code));
    });
    seen.screenOpen = screen.closed === null;
    seen.storeOpen = (await gw.store.schemaVersion()) > 0;
  });
  gw.lifecycle.own('requests', 'probe', async () => {
    seen.screenClosed = screen.closed;
  });
  await gw.close();
  t.same(seen, { connect: 'ECONNREFUSED', screenOpen: true, storeOpen: true, screenClosed: { code: 1001, reason: 'gateway shutting down' } });
  await t.rejects(gw.store.schemaVersion(), 'the store is closed at the end');
});
