/**
 * A child process for the lifecycle test: builds a gateway whose RTMP port is taken (the last step
 * of the start), then reports the files it still holds open in the data directory and lets Node
 * exit on its own. Whatever the failed start left running (a timer, a socket) keeps it alive.
 *
 *   node --import tsx test/helpers/failed-start.ts <dataDir> <takenPort>
 */
import { readdirSync, readlinkSync } from 'node:fs';
import { Writable } from 'node:stream';
import { buildGateway } from '../../gateway/src/app.js';
import { defaultConfig } from '../../gateway/src/config/load.js';

const [dataDir, port] = process.argv.slice(2);
const config = defaultConfig();
config.dataDir = dataDir!;
config.streams.flv.rtmpHost = '127.0.0.1';
config.streams.flv.rtmpPort = Number(port);
// The SIP server (and the JT/T 808 and 1078 listeners) start before the RTMP ingest fails: on a free loopback port, so it is there to be closed.
config.gb28181.host = '127.0.0.1';
config.gb28181.port = 0;
config.jt808.host = '127.0.0.1';
config.jt808.port = 0;
config.jt1078.host = '127.0.0.1';
config.jt1078.port = 0;
const logStream = new Writable({ write: (_c, _e, done) => done() });

try {
  await buildGateway(config, { logStream });
  process.stdout.write(JSON.stringify({ built: true }) + '\n');
} catch (err) {
  const open: string[] = [];
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      const target = readlinkSync(`/proc/self/fd/${fd}`);
      if (target.startsWith(dataDir!)) open.push(target);
    } catch {
      // the fd of the directory listing itself, gone by now
    }
  }
  process.stdout.write(JSON.stringify({ built: false, error: (err as Error).message, open }) + '\n');
}
