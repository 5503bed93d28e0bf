/**
 * The PTZ pad of the selected tile's camera: one tile selected, showing a camera that can be
 * steered. Commands go over the console's control connection (the `ptz` message); the lease state
 * is read over REST, which the pad polls.
 */
import { can } from '../lib/api.js';
import { h } from '../lib/dom.js';
import { ptzPad, restPtz, type PtzLink, type PtzPad, type PtzState } from '../lib/ptz-pad.js';
import type { ConsoleContext } from './context.js';

export class PtzPanel {
  readonly el = h('div', { class: 'console-ptz', dataset: { role: 'ptz-panel' } });
  private pad: PtzPad | null = null;
  private cameraId: string | null = null;

  constructor(private readonly ctx: ConsoleContext) {
    if (!can('ptz:control')) return;
    const link: PtzLink = {
      state: restPtz.state,
      command: (cameraId, body) => ctx.conn.request<PtzState>('ptz', { cameraId, ...body }),
    };
    const refresh = () => {
      const selected = [...ctx.selection.value];
      const tile = selected.length === 1 ? ctx.wall()?.tiles[selected[0]!] : undefined;
      const cameraId = tile?.stream?.cameraId ?? (tile?.content.kind === 'camera' ? tile.content.cameraId : null);
      if (cameraId === this.cameraId) return;
      this.pad?.destroy();
      this.pad = null;
      this.cameraId = cameraId;
      if (!cameraId) return;
      this.pad = ptzPad(cameraId, link, (message, kind) => ctx.notify(message, kind));
      this.el.replaceChildren(this.pad.el);
    };
    ctx.selection.on(refresh);
    ctx.wallChanged.on(refresh);
    ctx.wallCleared.on(() => {
      this.pad?.destroy();
      this.pad = null;
      this.cameraId = null;
    });
  }
}
