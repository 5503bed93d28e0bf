import { join } from 'node:path';
import t from 'tap';
import { SqliteStore } from '../../../gateway/src/store/sqlite/index.js';
import { tempDir } from '../../helpers/gateway.js';
import { storeContract } from '../../store/contract.js';

// A database file of its own per subtest: the same contract the PostgreSQL store passes (test/cluster/store-pg.test.ts).
await storeContract(t, async (t) => {
  const store = SqliteStore.open(join(tempDir(t), 'wallgate.db'));
  t.teardown(() => store.close());
  return store;
});
