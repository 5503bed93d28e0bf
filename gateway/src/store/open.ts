/** Opens the store the configuration names (store.engine): the embedded SQLite file or a shared PostgreSQL database. */
import { join } from 'node:path';
import type { Config } from '../config/schema.js';
import { PgStore } from './pg/index.js';
import { SqliteStore } from './sqlite/index.js';
import type { Store } from './types.js';

export interface StoreLog {
  warn(o: object, m: string): void;
}

export async function openStore(config: Config, dataDir: string, log: StoreLog): Promise<Store> {
  if (config.store.engine === 'postgres') return PgStore.open({ ...config.store.postgres, log });
  return SqliteStore.open(join(dataDir, 'wallgate.db'));
}
