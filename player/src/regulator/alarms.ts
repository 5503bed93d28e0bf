/**
 * The open alarms: read once over REST so the list shows at once, then held by the gateway's
 * subscription (its answer is the whole open set, and every change is pushed), and the list a
 * regulator works from: acknowledge, close, video to a wall or a window.
 */
import type { Alarm } from '../../../gateway/src/vehicles/model.js';
import { api } from '../lib/api.js';
import { ControlError, LiveSubscription, type ControlConnection } from '../lib/control.js';
import { h, replace, toast } from '../lib/dom.js';
import { errorText } from '../lib/errors.js';
import { addStrings, t } from '../lib/i18n.js';
import { openPopout } from '../lib/shell.js';
import { AlarmPicture } from './alarm-picture.js';
import { alarmStateLabel, alarmTypeLabel, fullTime, plateBadge, severityLabel, shortTime } from './labels.js';
import { channelsInOrder, type VehicleDirectory } from './vehicles.js';
import type { WallTarget } from './wall-target.js';

addStrings({
  'alarms.count': ['{open} open, {raised} not acknowledged', '共 {open} 条，{raised} 条未确认'],
  'alarms.none': ['No open alarm', '当前没有未结束的告警'],
  'alarms.occurrences': ['×{n}', '×{n}'],
  'alarms.occurrencesTitle': ['reported {n} times, last at {at}', '共上报 {n} 次，最近一次 {at}'],
  'alarms.cleared': ['condition over at {at}', '已于 {at} 解除'],
  'alarms.late': ['reported late', '补报'],
  'alarms.ackBy': ['acknowledged by {who} at {at}', '{who} 于 {at} 确认'],
  'alarms.note': ['Note (optional)', '备注（可选）'],
  'alarms.ack': ['Acknowledge', '确认'],
  'alarms.close': ['Close', '关闭'],
  'alarms.noteTooLong': ['A note is at most 500 characters', '备注最多 500 个字符'],
  'alarms.conflict': ['Already handled by someone else: {message}', '已被他人处理：{message}'],
  'alarms.failed': ['{action} failed: {message}', '{action}失败：{message}'],
  'alarms.closedBy': ['Alarm {plate} {type} was closed by {who}', '告警 {plate} {type} 已被 {who} 关闭'],
  'alarms.channels': ['Channels', '视频通道'],
  'alarms.channelsUnavailable': ['channels unavailable: {message}', '无法读取视频通道：{message}'],
  'alarms.popOut': ['Open channel {channel} ({name}) in its own window', '在新窗口打开通道 {channel}（{name}）'],
  'alarms.new': ['New {severity} alarm: {plate} {type}', '新{severity}告警：{plate} {type}'],
  'alarms.subscribeFailed': ['Live alarms are not coming in ({message}); trying again', '实时告警订阅失败（{message}），正在重试'],
});

export type AlarmChange =
  | { kind: 'upsert'; alarm: Alarm; isNew: boolean }
  | { kind: 'remove'; alarm: Alarm }
  /** The whole open set, anew. `baseline`: the page's first, in which nothing is news. */
  | { kind: 'reset'; baseline: boolean };

/** New alarms this severe flash on the page (the command centre is loud enough without sound). */
const FLASHING = new Set(['high', 'critical']);
const NOTE_MAX = 500;
/** Five pulses of 0.6 s in the stylesheet. */
const FLASH_MS = 3_000;
/** Two pulses of 0.5 s. */
const FOCUS_MS = 1_000;

const marks = new WeakMap<HTMLElement, Map<string, ReturnType<typeof setTimeout>>>();

/**
 * A class that marks an element for a while. A timer takes it off rather than animationend, which a
 * browser set to reduced motion never sends (the class then draws a still outline, which must go too).
 */
function mark(el: HTMLElement, cls: string, ms: number): void {
  let timers = marks.get(el);
  if (!timers) marks.set(el, (timers = new Map()));
  clearTimeout(timers.get(cls));
  el.classList.remove(cls);
  // Restarts the animation of an element marked again before its last one ended.
  void el.offsetWidth;
  el.classList.add(cls);
  timers.set(
    cls,
    setTimeout(() => {
      el.classList.remove(cls);
      timers.delete(cls);
    }, ms),
  );
}

/**
 * The open alarms in the user's scope, as the gateway has them. Once subscribed, everything the
 * store applies comes over the control connection (pushes, the subscription's answers, the answers
 * to acknowledging and closing), whose frames arrive in the order the gateway sent them: an answer
 * can never be older than a push before it.
 */
export class AlarmStore {
  readonly open = new Map<string, Alarm>();
  /** Closed before the subscription answered: the first REST read, still on its way, must not bring them back. */
  private readonly closedEarly = new Set<string>();
  /** Once the subscription answered, the set is the gateway's own and the REST read is stale. */
  private subscribed = false;
  private readonly hooks = new Set<(c: AlarmChange) => void>();
  private readonly offs: Array<() => void> = [];
  private subscription: LiveSubscription | null = null;

  constructor(private readonly conn: ControlConnection) {}

  /** True once the gateway's own open set is held (the subscription answered), not just the first page of a read. */
  get complete(): boolean {
    return this.subscribed;
  }

  start(): void {
    this.offs.push(
      this.conn.on('alarm', (p) => this.pushed(p as { change: string; alarm: Alarm })),
      this.conn.on('alarms.snapshot', (p) => this.reset((p as { alarms: Alarm[] }).alarms)),
    );
    // After a reconnection the pushes missed meanwhile are gone: the answer is the set as it is now.
    this.subscription = new LiveSubscription(
      this.conn,
      async () => this.reset((await this.conn.request<{ alarms: Alarm[] }>('alarms.subscribe', {})).alarms),
      (err, tries) => {
        if (tries === 1) toast(t('alarms.subscribeFailed', { message: errorText(err) }), 'error');
      },
    );
    // A first paint only: the subscription's answer is the whole set, whatever its size.
    void api<{ items: Alarm[] }>('GET', '/api/alarms?state=raised,acknowledged&limit=100').then(
      ({ items }) => {
        if (this.subscribed) return;
        for (const a of items) if (!this.open.has(a.id) && !this.closedEarly.has(a.id)) this.upsert(a, false);
      },
      (err: unknown) => toast(errorText(err), 'error'),
    );
  }

  destroy(): void {
    this.subscription?.stop();
    for (const off of this.offs.splice(0)) off();
    if (this.conn.state === 'open') this.conn.request('alarms.unsubscribe', {}).catch(() => {});
    this.hooks.clear();
  }

  onChange(hook: (c: AlarmChange) => void): () => void {
    this.hooks.add(hook);
    return () => this.hooks.delete(hook);
  }

  forVehicle(vehicleId: string): Alarm[] {
    return [...this.open.values()].filter((a) => a.vehicleId === vehicleId).sort(newestFirst);
  }

  countFor(vehicleId: string): number {
    let n = 0;
    for (const a of this.open.values()) if (a.vehicleId === vehicleId) n++;
    return n;
  }

  /** Vehicles with an open alarm, and whether one of them is still unacknowledged. */
  alarmedVehicles(): Map<string, 'raised' | 'acknowledged'> {
    const out = new Map<string, 'raised' | 'acknowledged'>();
    for (const a of this.open.values()) if (a.state === 'raised' || !out.has(a.vehicleId)) out.set(a.vehicleId, a.state === 'raised' ? 'raised' : 'acknowledged');
    return out;
  }

  /** Acknowledges or closes an alarm; the answer is the alarm as the action left it. */
  async handle(alarmId: string, action: 'ack' | 'close', note: string): Promise<void> {
    try {
      const { alarm } = await this.conn.request<{ alarm: Alarm }>(`alarm.${action}`, note ? { alarmId, note } : { alarmId });
      this.apply(alarm);
    } catch (err) {
      // Someone else handled it first and this page missed it: the subscription's answer, in step
      // with the pushes, brings the set up to date.
      if (err instanceof ControlError && err.code === 'GW_ERR_CONFLICT') void this.subscription?.refresh();
      throw err;
    }
  }

  private apply(alarm: Alarm) {
    if (alarm.state === 'closed') return this.remove(alarm);
    if (this.open.has(alarm.id)) this.upsert(alarm, false);
  }

  private pushed({ change, alarm }: { change: string; alarm: Alarm }) {
    if (change === 'closed' || alarm.state === 'closed') this.remove(alarm);
    else this.upsert(alarm, change === 'raised' && !this.open.has(alarm.id));
  }

  private reset(alarms: Alarm[]) {
    const baseline = !this.subscribed;
    this.subscribed = true;
    this.closedEarly.clear();
    this.open.clear();
    for (const a of alarms) if (a.state !== 'closed') this.open.set(a.id, a);
    this.emit({ kind: 'reset', baseline });
  }

  private upsert(alarm: Alarm, isNew: boolean) {
    this.open.set(alarm.id, alarm);
    this.emit({ kind: 'upsert', alarm, isNew });
  }

  private remove(alarm: Alarm) {
    if (!this.subscribed) this.closedEarly.add(alarm.id);
    if (!this.open.delete(alarm.id)) return;
    this.emit({ kind: 'remove', alarm });
  }

  private emit(c: AlarmChange) {
    for (const hook of this.hooks) hook(c);
  }
}

const newestFirst = (a: Alarm, b: Alarm) => b.raisedAt - a.raisedAt || (a.id < b.id ? 1 : -1);

export interface AlarmListOptions {
  store: AlarmStore;
  target: WallTarget;
  directory: VehicleDirectory;
  canHandle: boolean;
  /** The regulator's own name: an alarm closed by anyone else is worth a word. */
  username: string;
  onSelect(vehicleId: string): void;
}

/** The alarm panel: newest first, one card per open alarm, kept in step with the store. */
export class AlarmList {
  readonly el: HTMLElement;
  private readonly list: HTMLOListElement;
  private readonly count: HTMLSpanElement;
  private readonly empty: HTMLParagraphElement;
  private readonly rows = new Map<string, AlarmRow>();
  private readonly off: () => void;
  /** A card reads its vehicle's channels once it scrolls into view: a long list asks for no more than is seen. */
  private readonly visible: IntersectionObserver;
  private flashes = 0;

  constructor(private readonly o: AlarmListOptions) {
    this.list = h('ol', { class: 'alarm-list' });
    this.visible = new IntersectionObserver(
      (entries) => {
        for (const e of entries) {
          if (!e.isIntersecting) continue;
          this.visible.unobserve(e.target);
          const row = this.rows.get((e.target as HTMLElement).dataset.alarm ?? '');
          void row?.loadChannels();
          row?.seen();
        }
      },
      { root: this.list, rootMargin: '200px' },
    );
    this.count = h('span', { class: 'alarm-count muted' });
    this.empty = h('p', { class: 'muted alarm-empty' }, t('alarms.none'));
    this.el = h('section', { class: 'reg-alarms', 'aria-label': t('reg.alarms') }, h('header', { class: 'panel-head' }, h('h2', null, t('reg.alarms')), this.count), this.empty, this.list);
    this.off = o.store.onChange((c) => this.changed(c));
    this.changed({ kind: 'reset', baseline: true });
  }

  destroy(): void {
    this.off();
    this.visible.disconnect();
    for (const row of this.rows.values()) row.destroy();
    this.rows.clear();
  }

  /** Brings an alarm's card into view, for the vehicle panel's links. */
  reveal(alarmId: string): void {
    const row = this.rows.get(alarmId);
    if (!row) return;
    row.el.scrollIntoView({ block: 'nearest', behavior: 'smooth' });
    mark(row.el, 'focus', FOCUS_MS);
  }

  private changed(c: AlarmChange) {
    if (c.kind === 'reset') {
      for (const [id, row] of this.rows) {
        if (this.o.store.open.has(id)) continue;
        this.visible.unobserve(row.el);
        row.destroy();
        this.rows.delete(id);
      }
      // The page's first answer is what it opens with, however many there are (the first read shows
      // only a page of them). After that (a reconnection), alarms raised meanwhile are as new to the
      // regulator as a pushed one.
      for (const a of [...this.o.store.open.values()].sort(newestFirst)) this.put(a, !c.baseline && a.state === 'raised');
    } else if (c.kind === 'upsert') {
      this.put(c.alarm, c.isNew);
    } else {
      const row = this.rows.get(c.alarm.id);
      if (row) this.visible.unobserve(row.el);
      row?.destroy();
      this.rows.delete(c.alarm.id);
      if (c.alarm.closedBy && c.alarm.closedBy !== this.o.username && c.alarm.closeReason === 'handled') {
        toast(t('alarms.closedBy', { plate: c.alarm.plate, type: alarmTypeLabel(c.alarm.type), who: c.alarm.closedBy }));
      }
    }
    this.summarise();
  }

  private put(alarm: Alarm, isNew: boolean) {
    let row = this.rows.get(alarm.id);
    if (row) {
      row.render(alarm);
      return;
    }
    row = new AlarmRow(alarm, this.o);
    this.rows.set(alarm.id, row);
    const before = [...this.list.children].find((el) => {
      const other = this.rows.get((el as HTMLElement).dataset.alarm ?? '');
      return other !== undefined && other !== row && newestFirst(alarm, other.alarm) < 0;
    });
    this.list.insertBefore(row.el, before ?? null);
    this.visible.observe(row.el);
    if (isNew && FLASHING.has(alarm.severity) && !alarm.late) {
      row.flash();
      this.flashPanel();
      toast(t('alarms.new', { severity: severityLabel(alarm.severity), plate: alarm.plate, type: alarmTypeLabel(alarm.type) }), 'error');
    }
  }

  private flashPanel() {
    mark(this.el, 'flash', FLASH_MS);
    // Lasting, unlike the class: how many times the panel flashed, for monitoring and tests.
    this.el.dataset.flashes = String(++this.flashes);
  }

  private summarise() {
    const all = [...this.o.store.open.values()];
    this.count.textContent = t('alarms.count', { open: all.length, raised: all.filter((a) => a.state === 'raised').length });
    this.empty.hidden = all.length > 0;
  }
}

/** One alarm's card. The note field keeps what was typed while the alarm changes under it. */
class AlarmRow {
  readonly el: HTMLLIElement;
  private readonly head: HTMLDivElement;
  private readonly meta: HTMLDivElement;
  private readonly note: HTMLInputElement;
  private readonly ackButton: HTMLButtonElement;
  private readonly closeButton: HTMLButtonElement;
  private readonly channels: HTMLDivElement;
  private readonly error: HTMLDivElement;
  /** The picture taken when the alarm opened; fetched once the card has scrolled into view. */
  private readonly picture = new AlarmPicture('small');
  private visible = false;
  private destroyed = false;
  private busy = false;

  constructor(
    public alarm: Alarm,
    private readonly o: AlarmListOptions,
  ) {
    this.head = h('div', { class: 'alarm-head' });
    this.meta = h('div', { class: 'alarm-meta' });
    this.note = h('input', { class: 'alarm-note', name: 'note', maxlength: NOTE_MAX, placeholder: t('alarms.note'), 'aria-label': t('alarms.note'), disabled: !o.canHandle });
    this.ackButton = h('button', { type: 'button', class: 'alarm-ack', disabled: !o.canHandle, onclick: () => void this.act('ack') }, t('alarms.ack'));
    this.closeButton = h('button', { type: 'button', class: 'alarm-close danger', disabled: !o.canHandle, onclick: () => void this.act('close') }, t('alarms.close'));
    this.channels = h('div', { class: 'alarm-channels' });
    this.error = h('div', { class: 'alarm-error', role: 'alert' });
    this.note.addEventListener('keydown', (e) => {
      if (e.key === 'Enter') void this.act(this.alarm.state === 'raised' ? 'ack' : 'close');
    });
    // Asked afresh at the click: the channels may have changed since the card was drawn.
    const put = o.target.button(alarm.plate, async () => (await o.directory.get(alarm.vehicleId, true)).channels);
    this.el = h(
      'li',
      { class: 'alarm-row', dataset: { alarm: alarm.id, vehicle: alarm.vehicleId } },
      this.head,
      this.meta,
      this.picture.el,
      h('div', { class: 'alarm-actions' }, this.note, this.ackButton, this.closeButton),
      h('div', { class: 'alarm-video' }, put, this.channels),
      this.error,
    );
    // A click on the card (not on its controls) shows the vehicle.
    this.el.addEventListener('click', (e) => {
      if (!(e.target as Element).closest('button, input, a')) o.onSelect(alarm.vehicleId);
    });
    this.render(alarm);
  }

  destroy(): void {
    this.destroyed = true;
    this.picture.destroy();
    this.el.remove();
  }

  /** The card scrolled into view: its picture is worth fetching now. */
  seen(): void {
    this.visible = true;
    this.picture.update(this.alarm);
  }

  flash(): void {
    mark(this.el, 'flash', FLASH_MS);
    // Lasting, unlike the class: that this alarm came in as news.
    this.el.dataset.flashed = 'true';
  }

  render(alarm: Alarm): void {
    this.alarm = alarm;
    const el = this.el;
    el.dataset.state = alarm.state;
    el.dataset.severity = alarm.severity;
    const marked = ['flash', 'focus'].filter((c) => el.classList.contains(c));
    el.className = [`alarm-row`, `severity-${alarm.severity}`, `state-${alarm.state}`, ...marked].join(' ');
    const plate = h('button', { type: 'button', class: 'link alarm-plate', onclick: () => this.o.onSelect(alarm.vehicleId) }, plateBadge(alarm.plate, this.o.directory.peek(alarm.vehicleId)?.plateColor ?? null));
    replace(
      this.head,
      h('span', { class: `pill severity ${alarm.severity}` }, severityLabel(alarm.severity)),
      h('span', { class: 'alarm-type' }, alarmTypeLabel(alarm.type)),
      plate,
      h('time', { class: 'alarm-time', datetime: new Date(alarm.raisedAt).toISOString(), title: fullTime(alarm.raisedAt) }, shortTime(alarm.raisedAt)),
    );
    replace(
      this.meta,
      h('span', { class: `alarm-state ${alarm.state}` }, alarmStateLabel(alarm.state)),
      h('span', { class: 'alarm-occurrences', title: t('alarms.occurrencesTitle', { n: alarm.occurrences, at: fullTime(alarm.lastReportAt) }) }, t('alarms.occurrences', { n: alarm.occurrences })),
      alarm.acknowledgedBy && alarm.acknowledgedAt ? h('span', { class: 'alarm-ack-by' }, t('alarms.ackBy', { who: alarm.acknowledgedBy, at: shortTime(alarm.acknowledgedAt) })) : null,
      !alarm.active && alarm.clearedAt ? h('span', { class: 'muted' }, t('alarms.cleared', { at: shortTime(alarm.clearedAt) })) : null,
      alarm.late ? h('span', { class: 'muted' }, t('alarms.late')) : null,
      alarm.geofence ? h('span', { class: 'alarm-geofence' }, alarm.geofence.name) : null,
      alarm.detail ? h('span', { class: 'alarm-detail' }, alarm.detail) : null,
      alarm.note ? h('span', { class: 'alarm-note-text' }, `“${alarm.note}”`) : null,
    );
    this.ackButton.hidden = alarm.state !== 'raised';
    if (this.visible) this.picture.update(alarm);
  }

  async loadChannels(): Promise<void> {
    try {
      // Fresh: a card drawn from a vehicle read long ago would offer cameras it no longer has.
      const vehicle = await this.o.directory.get(this.alarm.vehicleId, true);
      if (this.destroyed) return;
      const plate = this.head.querySelector('.alarm-plate');
      plate?.replaceChildren(plateBadge(vehicle.plate, vehicle.plateColor));
      replace(
        this.channels,
        channelsInOrder(vehicle.channels).map((c) =>
          h('button', { type: 'button', class: 'pop-out', dataset: { camera: c.sourceId }, title: t('alarms.popOut', { channel: c.channel, name: c.name }), onclick: () => openPopout(c.sourceId) }, `⧉ ${c.channel} ${c.name}`),
        ),
      );
    } catch (err) {
      if (!this.destroyed) this.channels.replaceChildren(h('span', { class: 'muted' }, t('alarms.channelsUnavailable', { message: errorText(err) })));
    }
  }

  private async act(action: 'ack' | 'close') {
    // One action at a time: a second Enter while the first is answered would be refused as a
    // conflict, and reported as someone else's doing.
    if (this.busy) return;
    const note = this.note.value.trim();
    if (note.length > NOTE_MAX) {
      this.error.textContent = t('alarms.noteTooLong');
      return;
    }
    const label = action === 'ack' ? t('alarms.ack') : t('alarms.close');
    this.busy = true;
    this.error.textContent = '';
    this.ackButton.disabled = this.closeButton.disabled = true;
    try {
      await this.o.store.handle(this.alarm.id, action, note);
      this.note.value = '';
    } catch (err) {
      if (err instanceof ControlError && err.code === 'GW_ERR_CONFLICT') {
        const message = t('alarms.conflict', { message: errorText(err) });
        this.error.textContent = message;
        toast(message, 'error');
      } else {
        this.error.textContent = t('alarms.failed', { action: label, message: errorText(err) });
      }
    } finally {
      this.busy = false;
      this.ackButton.disabled = this.closeButton.disabled = !this.o.canHandle;
    }
  }
}
