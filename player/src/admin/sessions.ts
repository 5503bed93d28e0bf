/**
 * Live stream sessions (one pull per camera and profile), refreshed every 2 s, with force-stop: the
 * gateway closes the pull and tells its viewers why.
 */
import { api, ApiError, can } from '../lib/api.js';
import { h, toast } from '../lib/dom.js';
import { codeText, type CodedFailure } from '../lib/errors.js';
import { addStrings, formatNumber, t } from '../lib/i18n.js';
import { confirmDialog, duration, errorText, isAbort, type Section } from './common.js';

addStrings({
  'sessions.title': ['Live sessions', '实时会话'],
  'sessions.intro': ['One row per camera stream being pulled; refreshed every 2 seconds.', '每行为一路正在拉取的视频流，每 2 秒刷新。'],
  'sessions.col.camera': ['Camera', '摄像机'],
  'sessions.col.profile': ['Stream', '码流'],
  'sessions.col.state': ['State', '状态'],
  'sessions.col.readers': ['Viewers per output', '各输出观看数'],
  'sessions.col.uptime': ['Uptime', '运行时长'],
  'sessions.col.bitrate': ['Bitrate', '码率'],
  'sessions.col.video': ['Video', '视频'],
  'sessions.col.error': ['Last error', '最近错误'],
  'sessions.col.actions': ['Actions', '操作'],
  'sessions.main': ['Main', '主码流'],
  'sessions.sub': ['Sub', '子码流'],
  'sessions.transcoding': ['transcoding', '转码中'],
  'sessions.kbps': ['{n} kbps', '{n} kbps'],
  'sessions.stop': ['Force stop', '强制停止'],
  'sessions.confirmStop': ['Stop the stream of "{name}" ({id})? Everyone watching it loses the picture.', '停止“{name}”（{id}）的视频流？所有正在观看的人都将失去画面。'],
  'sessions.stopped': ['Stream of {id} stopped', '已停止 {id} 的视频流'],
  'sessions.none': ['No stream is live.', '当前没有实时视频流。'],
  'sessions.state.idle': ['Idle', '空闲'],
  'sessions.state.starting': ['Starting', '启动中'],
  'sessions.state.ready': ['Live', '直播中'],
  'sessions.state.lingering': ['Closing', '即将关闭'],
  'sessions.state.retrying': ['Retrying', '重试中'],
  'sessions.state.closed': ['Closed', '已关闭'],
});

interface SessionSummary {
  id: string;
  cameraId: string;
  cameraName: string;
  profile: 'main' | 'sub';
  state: string;
  readers: Record<string, number>;
  bitrateKbps: number;
  uptimeMs: number;
  restarts: number;
  inputCodec: string | null;
  resolution: string | null;
  transcoding: boolean;
  lastError: CodedFailure | null;
}

const REFRESH_MS = 2_000;
const STATE_CLASS: Record<string, string> = { ready: 'ok', starting: 'warn', retrying: 'bad', lingering: 'muted', idle: 'muted', closed: 'muted' };
const OUTPUTS = [
  ['webrtc', 'WebRTC'],
  ['flv', 'FLV'],
  ['hls', 'HLS'],
] as const;

function readersText(readers: Record<string, number>): string {
  const parts = OUTPUTS.map(([k, label]) => `${label} ${readers[k] ?? 0}`);
  // Prewarm readers are the gateway's own (a tour's next camera), shown only when there are any.
  if (readers.prewarm) parts.push(`prewarm ${readers.prewarm}`);
  // So are snapshot readers: held by a picture of an idle camera until its keyframe arrives.
  if (readers.snapshot) parts.push(`snapshot ${readers.snapshot}`);
  return parts.join(' · ');
}

export const sessionsSection: Section = {
  id: 'sessions',
  label: 'sessions.title',
  allowed: () => can('streams:admin'),
  mount(el) {
    const rows = h('tbody');
    const alert = h('div', { class: 'form-error', role: 'alert' });
    const empty = h('p', { class: 'empty muted', hidden: true }, t('sessions.none'));
    const byId = new Map<string, HTMLTableRowElement>();
    /** Stopped here: a poll answered just before the stop must not bring the row back. */
    const stopped = new Set<string>();
    let alive = true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let controller: AbortController | null = null;

    const stop = async (s: SessionSummary) => {
      if (!(await confirmDialog(t('sessions.confirmStop', { name: s.cameraName, id: s.cameraId }), t('sessions.stop')))) return;
      try {
        await api('DELETE', `/api/streams/${encodeURIComponent(s.id)}`);
        toast(t('sessions.stopped', { id: s.cameraId }), 'ok');
      } catch (err) {
        // Already gone (it ended on its own) is what was wanted; anything else is shown.
        if (!(err instanceof ApiError && err.status === 404)) {
          alert.textContent = errorText(err);
          return;
        }
      }
      stopped.add(s.id);
      byId.get(s.id)?.remove();
      byId.delete(s.id);
      empty.hidden = byId.size > 0;
    };

    const cells = (s: SessionSummary) => [
      h('td', null, h('div', { class: 'name' }, s.cameraName), h('div', { class: 'mono muted' }, s.cameraId)),
      h('td', null, t(`sessions.${s.profile}`)),
      h('td', null, h('span', { class: `pill ${STATE_CLASS[s.state] ?? ''}` }, t(`sessions.state.${s.state}`))),
      h('td', { class: 'readers' }, readersText(s.readers)),
      h('td', { class: 'num' }, duration(s.uptimeMs)),
      h('td', { class: 'num' }, s.bitrateKbps > 0 ? t('sessions.kbps', { n: formatNumber(Math.round(s.bitrateKbps)) }) : '—'),
      h('td', null, [s.inputCodec, s.resolution].filter(Boolean).join(' '), s.transcoding ? h('span', { class: 'pill warn' }, t('sessions.transcoding')) : null),
      h('td', { class: 'health-error', title: s.lastError?.code ?? '' }, s.lastError ? codeText(s.lastError) : ''),
    ];

    const render = (items: SessionSummary[]) => {
      const live = items.filter((s) => !stopped.has(s.id));
      const seen = new Set(live.map((s) => s.id));
      for (const [id, row] of byId) {
        if (seen.has(id)) continue;
        row.remove();
        byId.delete(id);
      }
      // Rows are updated in place, in the gateway's order, so a row does not jump under the pointer.
      for (const [i, s] of live.entries()) {
        let row = byId.get(s.id);
        if (!row) {
          // The button stays while the cells around it are refreshed: a click is never lost to a redraw.
          const stopButton = h('button', { type: 'button', class: 'danger', onclick: () => void stop(s) }, t('sessions.stop'));
          row = h('tr', { dataset: { session: s.id, camera: s.cameraId } }, h('td', { class: 'actions' }, stopButton));
          byId.set(s.id, row);
        }
        const action = row.lastElementChild!;
        row.replaceChildren(...cells(s), action);
        if (rows.children[i] !== row) rows.insertBefore(row, rows.children[i] ?? null);
      }
      empty.hidden = live.length > 0;
    };

    const poll = async () => {
      controller = new AbortController();
      try {
        const { items } = await api<{ items: SessionSummary[] }>('GET', '/api/streams', { signal: controller.signal });
        if (!alive) return;
        render(items);
        alert.textContent = '';
      } catch (err) {
        if (isAbort(err) || !alive) return;
        alert.textContent = errorText(err);
      }
      if (alive) timer = setTimeout(() => void poll(), REFRESH_MS);
    };

    el.append(
      h('p', { class: 'muted' }, t('sessions.intro')),
      alert,
      h(
        'div',
        { class: 'table-scroll' },
        h(
          'table',
          { class: 'data sessions-table' },
          h(
            'thead',
            null,
            h(
              'tr',
              null,
              ['camera', 'profile', 'state', 'readers', 'uptime', 'bitrate', 'video', 'error', 'actions'].map((c) =>
                h('th', { scope: 'col', class: c === 'uptime' || c === 'bitrate' ? 'num' : undefined }, t(`sessions.col.${c}`)),
              ),
            ),
          ),
          rows,
        ),
      ),
      empty,
    );
    void poll();
    return () => {
      alive = false;
      clearTimeout(timer);
      controller?.abort();
    };
  },
};
