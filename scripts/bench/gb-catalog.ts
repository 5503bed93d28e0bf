/**
 * Catalog import: one platform's catalog of N channels (GB2312 names, in business groups and
 * virtual organisations) arriving as multi-message answers, from the first MESSAGE body to every
 * channel in the registry: XML decoding and parsing, gathering by SN, departments, the registry's
 * batched upsert with its search index, and health. The SIP hop is not in it (bench:gb28181 measures
 * that end to end over the simulator). Also runs alone: `node --import tsx scripts/bench/gb-catalog.ts`,
 * its JSON object last on stdout.
 */
import { randomBytes } from 'node:crypto';
import { rmSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { CatalogImporter, type CatalogCounts } from '../../gateway/src/gb28181/catalog.js';
import { GbDirectory } from '../../gateway/src/gb28181/directory.js';
import { buildManscdp, parseManscdp } from '../../gateway/src/gb28181/xml.js';
import { NetworkPolicy } from '../../gateway/src/lib/cidr.js';
import { CredentialSealer } from '../../gateway/src/registry/credentials.js';
import { Registry } from '../../gateway/src/registry/service.js';
import { SqliteStore } from '../../gateway/src/store/sqlite/index.js';
import { machineConditions, runIfMain } from './harness.js';

const TARGET_MS = 10_000;
const PLATFORM = '34020000002000000001';

export interface CatalogImportResult {
  catalog_channels: number;
  catalog_import_ms: number;
  /** The same catalog again, unchanged: what a periodic re-query costs. */
  catalog_reimport_ms: number;
  target_ms: number;
  met: boolean;
  conditions: { messages: number; items_per_message: number; groups: number; body_kb: number; created: number; node: string; cpu: string | undefined; cores: number; load_avg_1m: number };
}

export async function measureCatalogImport(opts: { channels?: number; perMessage?: number; groups?: number } = {}): Promise<CatalogImportResult> {
  const channels = opts.channels ?? 10_000;
  const perMessage = opts.perMessage ?? 500;
  const groupCount = opts.groups ?? 40;
  const dir = mkdtempSync(join(tmpdir(), 'wallgate-bench-catalog-'));
  const store = SqliteStore.open(join(dir, 'bench.db'));
  try {
    await store.departments.create({ id: 'root', name: 'Root', parentId: null, level: 'national', path: '/root/' }, Date.now());
    const sealer = new CredentialSealer(randomBytes(32));
    const registry = new Registry(store, sealer, new NetworkPolicy({ allow: [], deny: [] }), async () => []);
    await registry.init();
    const directory = new GbDirectory({ store, sealer, registry, refusedListSize: 100 });
    const admin = { id: 'bench', username: 'bench', ip: '-', scopes: ['root'] };
    await directory.create(admin, { id: PLATFORM, name: 'Platform', departmentId: 'root', password: 'bench-pass' });
    const importer = new CatalogImporter({ store, registry, directory, timeoutMs: 600_000, maxChannels: channels + groupCount });

    const groups = Array.from({ length: groupCount }, (_, g) => ({
      DeviceID: `3402000000${g % 2 ? '216' : '215'}${String(g).padStart(7, '0')}`,
      Name: `第${g}业务分组`,
      ParentID: PLATFORM,
    }));
    const items = [
      ...groups,
      ...Array.from({ length: channels }, (_, i) => ({
        DeviceID: `3402000000131${String(i).padStart(7, '0')}`,
        Name: `路口摄像机 ${i} 号`,
        Manufacturer: 'Hikvision',
        Model: 'DS-2DE4425IW',
        CivilCode: '340200',
        Address: `长江中路 ${i} 号`,
        Parental: 0,
        ParentID: `${PLATFORM}/${groups[i % groupCount]!.DeviceID}`,
        Status: i % 7 ? 'ON' : 'OFF',
        Longitude: (117 + (i % 1000) / 10_000).toFixed(6),
        Latitude: (31 + Math.floor(i / 1000) / 1000).toFixed(6),
      })),
    ];
    const bodies = (sn: number) => {
      const out: Buffer[] = [];
      for (let i = 0; i < items.length; i += perMessage) {
        const part = items.slice(i, i + perMessage);
        out.push(buildManscdp('Response', { CmdType: 'Catalog', SN: sn, DeviceID: PLATFORM, SumNum: items.length, DeviceList: { '@_Num': part.length, Item: part } }));
      }
      return out;
    };
    const run = async (sn: number): Promise<[number, CatalogCounts]> => {
      const messages = bodies(sn);
      const t0 = performance.now();
      const done = importer.begin(PLATFORM, sn);
      for (const body of messages) importer.accept(PLATFORM, parseManscdp(body, 4 * 1024 * 1024));
      const counts = await done;
      return [performance.now() - t0, counts];
    };
    const [ms, counts] = await run(1);
    if (counts.created !== channels) throw new Error(`only ${counts.created} of ${channels} channels were created`);
    const [again] = await run(2);
    importer.close();
    const messages = bodies(3);
    return {
      catalog_channels: channels,
      catalog_import_ms: Math.round(ms),
      catalog_reimport_ms: Math.round(again),
      target_ms: TARGET_MS,
      met: ms <= TARGET_MS,
      conditions: {
        messages: messages.length,
        items_per_message: perMessage,
        groups: groupCount,
        body_kb: Math.round(messages.reduce((n, b) => n + b.length, 0) / 1024),
        created: counts.created,
        ...machineConditions(),
      },
    };
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

runIfMain(import.meta.url, measureCatalogImport);
