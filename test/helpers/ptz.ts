import type { PtzSender } from '../../gateway/src/ptz/service.js';
import type { SourceRecord } from '../../gateway/src/store/types.js';
import type { TestGateway } from './gateway.js';

/**
 * The PtzSender tests inject through BuildOptions.ptzSender in place of the GB service: it records
 * each command (and can be told to fail the next ones).
 */
export class RecordingPtzSender implements PtzSender {
  readonly sent: { cameraId: string; url: string; hex: string }[] = [];
  failWith: Error | null = null;
  async send(source: SourceRecord, ptzCmdHex: string): Promise<void> {
    if (this.failWith) throw this.failWith;
    this.sent.push({ cameraId: source.id, url: source.url, hex: ptzCmdHex });
  }
}

/**
 * A GB/T 28181 channel as the catalog import registers it (protocol gb28181, its 20-digit id, no
 * credential), written through the store: the REST source routes take camera URLs only.
 */
export async function gbChannel(gw: TestGateway, id: string, departmentId: string, deviceId = '34020000001320000001'): Promise<SourceRecord> {
  const dep = gw.registry.departments.get(departmentId);
  if (!dep) throw new Error(`no department ${departmentId}`);
  return gw.store.sources.create(
    {
      id,
      name: `GB ${id}`,
      departmentId,
      deptPath: dep.path,
      level: dep.level,
      address: '',
      url: `gb28181://${deviceId}/${id}`,
      subUrl: null,
      protocol: 'gb28181',
      codec: 'unknown',
      lat: null,
      lon: null,
      tags: [],
      enabled: true,
      credential: null,
    },
    Date.now(),
  );
}
