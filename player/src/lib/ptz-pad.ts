/**
 * The PTZ pad of a camera (console, pop-out): eight directions held to move and released to stop,
 * zoom in and out the same way, a speed, and presets. It shows only for a camera that can be steered
 * (the gateway's PTZ state says so; a user without ptz:control gets no state and no pad), and is
 * disabled, with who holds it, while another user controls the camera; a supervisor may take over.
 */
import { api, ApiError } from './api.js';
import { ControlError } from './control.js';
import { h } from './dom.js';
import { errorText } from './errors.js';
import { addStrings, formatTime, t } from './i18n.js';

addStrings({
  'ptz.title': ['PTZ', '云台'],
  'ptz.up': ['Up', '上'],
  'ptz.down': ['Down', '下'],
  'ptz.left': ['Left', '左'],
  'ptz.right': ['Right', '右'],
  'ptz.upLeft': ['Up left', '左上'],
  'ptz.upRight': ['Up right', '右上'],
  'ptz.downLeft': ['Down left', '左下'],
  'ptz.downRight': ['Down right', '右下'],
  'ptz.stop': ['Stop', '停止'],
  'ptz.zoomIn': ['Zoom in', '放大'],
  'ptz.zoomOut': ['Zoom out', '缩小'],
  'ptz.speed': ['Speed', '速度'],
  'ptz.preset': ['Preset', '预置位'],
  'ptz.goto': ['Go to', '调用'],
  'ptz.set': ['Save here', '设置'],
  'ptz.hint': ['Press and hold to move; release to stop.', '按住移动，松开停止。'],
  'ptz.mine': ['You control this camera until {time}.', '您正在控制该摄像机，至 {time}。'],
  'ptz.held': ['{user} controls this camera until {time}.', '{user} 正在控制该摄像机，至 {time}。'],
  'ptz.takeover': ['Take over', '接管'],
  'ptz.unavailable': ['PTZ commands cannot be sent now: the GB/T 28181 service is not running.', '暂时无法发送云台命令：国标服务未运行。'],
  'ptz.presetSaved': ['Preset {preset} saved.', '已设置预置位 {preset}。'],
});

export interface PtzState {
  cameraId: string;
  supported: boolean;
  holder: { userId: string; username: string } | null;
  until: number | null;
  mine: boolean;
  canTakeOver: boolean;
  /** How long a command holds the camera: a held button repeats its move within it, or the gateway stops the camera. */
  leaseMs: number;
}

/** How the pad reaches the gateway: the control WebSocket (console) or REST (pop-out). */
export interface PtzLink {
  state(cameraId: string): Promise<PtzState>;
  command(cameraId: string, body: Record<string, unknown>): Promise<PtzState>;
}

export const restPtz: PtzLink = {
  state: (cameraId) => api<PtzState>('GET', `/api/cameras/${encodeURIComponent(cameraId)}/ptz`),
  command: (cameraId, body) => api<PtzState>('POST', `/api/cameras/${encodeURIComponent(cameraId)}/ptz`, { body }),
};

type Move = { pan?: -1 | 1; tilt?: -1 | 1; zoom?: -1 | 1 };
/** The pad's cells, row by row; worded when drawn (the page's language is chosen by then). */
const directions = (): [key: string, label: string, move: Move, glyph: string][] => [
  ['up-left', t('ptz.upLeft'), { pan: -1, tilt: 1 }, '↖'],
  ['up', t('ptz.up'), { tilt: 1 }, '↑'],
  ['up-right', t('ptz.upRight'), { pan: 1, tilt: 1 }, '↗'],
  ['left', t('ptz.left'), { pan: -1 }, '←'],
  ['stop', t('ptz.stop'), {}, '■'],
  ['right', t('ptz.right'), { pan: 1 }, '→'],
  ['down-left', t('ptz.downLeft'), { pan: -1, tilt: -1 }, '↙'],
  ['down', t('ptz.down'), { tilt: -1 }, '↓'],
  ['down-right', t('ptz.downRight'), { pan: 1, tilt: -1 }, '↘'],
];
const REFRESH_MS = 3_000;

export interface PtzPad {
  readonly el: HTMLElement;
  destroy(): void;
}

/** `notify` tells the user how a command went where the page shows outcomes. */
export function ptzPad(cameraId: string, link: PtzLink, notify: (message: string, kind: 'ok' | 'error') => void): PtzPad {
  let state: PtzState | null = null;
  let holding: HTMLButtonElement | null = null;
  let destroyed = false;
  // Commands go one after another: a release's stop never overtakes the move it ends.
  let queue: Promise<unknown> = Promise.resolve();

  const status = h('p', { class: 'ptz-status muted', dataset: { role: 'ptz-status' } }, t('ptz.hint'));
  const takeover = h('button', { class: 'danger', hidden: true, dataset: { ptz: 'takeover' }, onclick: () => send({ action: 'stop', takeover: true }) }, t('ptz.takeover'));
  const speed = h('input', { type: 'range', min: '1', max: '255', value: '128', dataset: { role: 'ptz-speed' }, 'aria-label': t('ptz.speed') });
  const presetNo = h('input', { type: 'number', min: '1', max: '255', value: '1', class: 'ptz-preset-no', dataset: { role: 'ptz-preset' }, 'aria-label': t('ptz.preset') });

  const explain = (e: unknown) => {
    const code = e instanceof ApiError ? e.code : e instanceof ControlError ? e.code : null;
    return code === 'GW_ERR_UNAVAILABLE' ? t('ptz.unavailable') : errorText(e);
  };
  const show = (s: PtzState) => {
    state = s;
    el.hidden = !s.supported;
    const other = !!s.holder && !s.mine;
    controls.disabled = other;
    takeover.hidden = !(other && s.canTakeOver);
    const time = s.until ? formatTime(s.until) : '';
    status.textContent = other ? t('ptz.held', { user: s.holder!.username, time }) : s.mine ? t('ptz.mine', { time }) : t('ptz.hint');
    el.dataset.holder = s.holder?.username ?? '';
  };
  function send(body: Record<string, unknown>): Promise<PtzState | null> {
    const next = queue.then(() =>
      link.command(cameraId, body).then(
        (s) => {
          if (!destroyed) show(s);
          return s;
        },
        (e: unknown) => {
          if (!destroyed) {
            notify(explain(e), 'error');
            // A refusal may mean someone else holds it now: show who.
            void refresh();
          }
          return null;
        },
      ),
    );
    queue = next;
    return next;
  }
  async function refresh() {
    try {
      const s = await link.state(cameraId);
      if (!destroyed && !holding) show(s);
    } catch {
      // No state (no ptz:control, not in scope, gateway away): no pad, or the last one shown.
      if (!state) el.hidden = true;
    }
  }

  let renewal: ReturnType<typeof setTimeout> | null = null;
  /** Counts presses: a renewal belongs to the press that scheduled it, never to a later one. */
  let presses = 0;
  const press = (button: HTMLButtonElement, move: Move) => {
    if (holding || controls.disabled) return;
    holding = button;
    const thisPress = ++presses;
    button.classList.add('active');
    const body = { action: 'move', ...move, speed: Number(speed.value), ...(move.zoom ? { zoomSpeed: Math.max(1, Math.round(Number(speed.value) / 17)) } : {}) };
    const held = () => holding === button && presses === thisPress && !destroyed;
    // Held longer than the lease, the move is repeated, or the gateway would stop the camera under the operator's finger.
    const again = (s: PtzState | null) => {
      if (!s || !held()) return;
      renewal = setTimeout(() => {
        if (held()) void send(body).then(again);
      }, s.leaseMs / 2);
    };
    void send(body).then(again);
  };
  const release = () => {
    if (!holding) return;
    if (renewal) clearTimeout(renewal);
    renewal = null;
    holding.classList.remove('active');
    holding = null;
    void send({ action: 'stop' });
  };
  const holdButton = (key: string, label: string, move: Move, glyph: string) => {
    const b = h('button', { type: 'button', class: 'ptz-dir', title: label, 'aria-label': label, dataset: { ptz: key } }, glyph);
    b.addEventListener('pointerdown', (e) => {
      if (e.button !== 0) return;
      e.preventDefault();
      b.setPointerCapture(e.pointerId);
      press(b, move);
    });
    b.addEventListener('pointerup', release);
    b.addEventListener('pointercancel', release);
    b.addEventListener('lostpointercapture', release);
    b.addEventListener('keydown', (e) => {
      if ((e.key === 'Enter' || e.key === ' ') && !e.repeat) {
        e.preventDefault();
        press(b, move);
      }
    });
    b.addEventListener('keyup', (e) => {
      if (e.key === 'Enter' || e.key === ' ') release();
    });
    b.addEventListener('blur', release);
    return b;
  };

  const pad = h(
    'div',
    { class: 'ptz-grid' },
    directions().map(([key, label, move, glyph]) =>
      key === 'stop' ? h('button', { type: 'button', class: 'ptz-dir ptz-stop', title: label, 'aria-label': label, dataset: { ptz: 'stop' }, onclick: () => void send({ action: 'stop' }) }, glyph) : holdButton(key, label, move, glyph),
    ),
  );
  const zoom = h('div', { class: 'ptz-zoom' }, holdButton('zoom-in', t('ptz.zoomIn'), { zoom: 1 }, '＋'), holdButton('zoom-out', t('ptz.zoomOut'), { zoom: -1 }, '－'));
  const presetOp = (op: 'goto' | 'set') => async () => {
    const preset = Number(presetNo.value);
    const s = await send({ action: 'preset', op, preset });
    if (s && op === 'set') notify(t('ptz.presetSaved', { preset }), 'ok');
  };
  const presets = h(
    'div',
    { class: 'ptz-presets' },
    h('label', { class: 'inline small' }, t('ptz.preset'), presetNo),
    h('button', { type: 'button', dataset: { ptz: 'preset-goto' }, onclick: presetOp('goto') }, t('ptz.goto')),
    h('button', { type: 'button', dataset: { ptz: 'preset-set' }, onclick: presetOp('set') }, t('ptz.set')),
  );
  const controls = h('fieldset', { class: 'ptz-controls' }, h('div', { class: 'ptz-row' }, pad, zoom), h('label', { class: 'inline small' }, t('ptz.speed'), speed), presets);
  const el = h('section', { class: 'ptz-pad', hidden: true, dataset: { role: 'ptz-pad', camera: cameraId } }, h('h3', null, t('ptz.title')), controls, status, takeover);

  const onBlur = () => release();
  window.addEventListener('blur', onBlur);
  const timer = setInterval(() => void refresh(), REFRESH_MS);
  void refresh();
  return {
    el,
    destroy() {
      release();
      destroyed = true;
      clearInterval(timer);
      window.removeEventListener('blur', onBlur);
      el.remove();
    },
  };
}
