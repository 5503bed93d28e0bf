import t from 'tap';
import { defaultConfig } from '../../../gateway/src/config/load.js';
import { StreamManager } from '../../../gateway/src/streams/manager.js';
import type { SourceResolver } from '../../../gateway/src/streams/types.js';

// A file of its own: it counts the process's listening servers, which another test's teardown would disturb.
t.test('a manager closed while it starts leaves no listening server behind', async (t) => {
  const resolver: SourceResolver = {
    resolve: async () => null,
    checkConnect: async () => ({ addresses: ['10.0.0.1'] }),
    setHealth: async () => {},
  };
  const servers = () => process.getActiveResourcesInfo().filter((r) => r === 'TCPServerWrap').length;
  const before = servers();
  const manager = new StreamManager(defaultConfig().streams, t.testdir(), resolver, { info() {}, warn() {}, error() {} });
  const starting = manager.start();
  await manager.close();
  await starting;
  t.equal(servers(), before, "the checked fetcher's server is not left listening");
});
