/**
 * The store contract: what every engine (SQLite, PostgreSQL) must do the same, section by section
 * (test/store/sections/*.ts). Run by test/unit/store/contract-sqlite.test.ts and
 * test/cluster/store-pg.test.ts. Sections may share one database: each makes its own ids and
 * department subtree, and counts only its own rows.
 */
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Test } from 'tap';
import type { Store } from '../../gateway/src/store/types.js';

/**
 * A store for one subtest. Sections share one database where the engine allows it, so rows carry
 * unique ids; `empty` asks for a store of its own, for what is bounded or read table-wide (the
 * refused lists' maxRows, the alarm pictures' maxCount and maxBytes, every vehicle's last position).
 */
export type OpenStore = (t: Test, opts?: { empty?: boolean }) => Promise<Store>;
export type Section = (t: Test, open: OpenStore) => void;

const SECTIONS_DIR = fileURLToPath(new URL('./sections/', import.meta.url));

export async function storeContract(t: Test, open: OpenStore): Promise<void> {
  const files = readdirSync(SECTIONS_DIR).filter((f) => f.endsWith('.ts')).sort();
  if (!files.length) throw new Error(`no contract sections in ${SECTIONS_DIR}`);
  for (const file of files) {
    const mod = (await import(new URL(`./sections/${file}`, import.meta.url).href)) as { default?: Section };
    if (typeof mod.default !== 'function') throw new Error(`contract section ${file} has no default export (t, open) => void`);
    const section = mod.default;
    await t.test(file.replace(/\.ts$/, ''), async (t) => section(t, open));
  }
}
