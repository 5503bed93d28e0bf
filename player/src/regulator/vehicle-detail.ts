/** The selected vehicle: who and what it is, where it was last, its cameras and its open alarms. */
import type { Alarm } from '../../../gateway/src/vehicles/model.js';
import { h, replace, type Child } from '../lib/dom.js';
import { errorText } from '../lib/errors.js';
import { addStrings, t } from '../lib/i18n.js';
import { openPopout } from '../lib/shell.js';
import { AlarmPicture } from './alarm-picture.js';
import type { AlarmStore } from './alarms.js';
import { alarmStateLabel, alarmTypeLabel, categoryLabel, coordinate, fullTime, plateBadge, severityLabel, shortTime, speedLabel } from './labels.js';
import { channelsInOrder, type VehicleDirectory, type VehicleView } from './vehicles.js';
import type { WallTarget } from './wall-target.js';

addStrings({
  'detail.close': ['Close the vehicle panel', '关闭车辆详情'],
  'detail.loading': ['Loading the vehicle…', '正在读取车辆…'],
  'detail.failed': ['The vehicle could not be read: {message}', '车辆信息读取失败：{message}'],
  'detail.company': ['Company', '企业'],
  'detail.department': ['Department', '所属部门'],
  'detail.category': ['Category', '类别'],
  'detail.terminal': ['Terminal', '终端'],
  'detail.hazardClass': ['Hazard class', '危险类别'],
  'detail.unNumber': ['UN number', '联合国编号'],
  'detail.cargo': ['Cargo', '货物'],
  'detail.status': ['Status', '状态'],
  'detail.position': ['Last position', '最近位置'],
  'detail.positionAt': ['Reported at', '上报时间'],
  'detail.speed': ['Speed, heading', '速度、方向'],
  'detail.heading': ['{degrees}°', '{degrees}°'],
  'detail.moving': ['moving', '行驶中'],
  'detail.stopped': ['stopped', '停止'],
  'detail.noPosition': ['No position reported yet', '尚未上报位置'],
  'detail.channels': ['Cameras', '视频通道'],
  'detail.noChannels': ['No camera channel', '没有视频通道'],
  'detail.popOut': ['Pop out', '弹出'],
  'detail.alarms': ['Open alarms', '未结束告警'],
  'detail.noAlarms': ['No open alarm', '没有未结束的告警'],
});

export interface VehicleDetailOptions {
  directory: VehicleDirectory;
  store: AlarmStore;
  target: WallTarget;
  onClose(): void;
  onRevealAlarm(alarmId: string): void;
}

export class VehicleDetail {
  readonly el: HTMLElement;
  private readonly body: HTMLDivElement;
  private live: HTMLDListElement | null = null;
  private alarms: HTMLElement | null = null;
  private shown: string | null = null;
  /** The open alarms' pictures, kept across redraws so a picture is fetched once, not at every push. */
  private readonly pictures = new Map<string, AlarmPicture>();

  constructor(private readonly o: VehicleDetailOptions) {
    this.body = h('div', { class: 'detail-body' });
    this.el = h(
      'aside',
      { class: 'vehicle-detail', hidden: true, 'aria-live': 'polite' },
      h('button', { type: 'button', class: 'link detail-close', title: t('detail.close'), 'aria-label': t('detail.close'), onclick: () => o.onClose() }, '×'),
      this.body,
    );
  }

  get vehicleId(): string | null {
    return this.shown;
  }

  async show(vehicleId: string): Promise<void> {
    this.shown = vehicleId;
    this.el.hidden = false;
    this.el.dataset.vehicle = vehicleId;
    const known = this.o.directory.peek(vehicleId);
    if (known) this.render(known);
    else replace(this.body, h('p', { class: 'muted' }, t('detail.loading')));
    try {
      // Asked afresh: channels or cargo may have changed since the list was read.
      const v = await this.o.directory.get(vehicleId, true);
      if (this.shown === vehicleId) this.render(v);
    } catch (err) {
      if (this.shown === vehicleId) replace(this.body, h('p', { class: 'form-error' }, t('detail.failed', { message: errorText(err) })));
    }
  }

  hide(): void {
    this.shown = null;
    this.el.hidden = true;
    delete this.el.dataset.vehicle;
    this.body.replaceChildren();
    this.live = this.alarms = null;
    this.dropPictures(new Set());
  }

  private dropPictures(keep: Set<string>) {
    for (const [id, picture] of this.pictures) {
      if (keep.has(id)) continue;
      picture.destroy();
      this.pictures.delete(id);
    }
  }

  private pictureOf(alarm: Alarm): HTMLElement {
    let picture = this.pictures.get(alarm.id);
    if (!picture) this.pictures.set(alarm.id, (picture = new AlarmPicture('large')));
    picture.update(alarm);
    return picture.el;
  }

  /** The position or status changed. */
  refresh(): void {
    const v = this.shown ? this.o.directory.peek(this.shown) : undefined;
    if (v && this.live) this.renderLive(v, this.live);
  }

  refreshAlarms(): void {
    if (this.shown && this.alarms) this.renderAlarms(this.shown, this.alarms);
  }

  private render(v: VehicleView) {
    const field = (key: string, ...value: Child[]) => [h('dt', null, t(key)), h('dd', null, ...value)];
    this.live = h('dl', { class: 'detail-live' });
    this.alarms = h('div', { class: 'detail-alarms' });
    const channels = channelsInOrder(v.channels);
    // Asked afresh at the click: channels may have changed since the panel opened.
    const put = this.o.target.button(v.plate, async () => (await this.o.directory.get(v.id, true)).channels);
    replace(
      this.body,
      h('h2', { class: 'detail-title' }, plateBadge(v.plate, v.plateColor), h('span', { class: 'detail-category' }, categoryLabel(v.category))),
      h(
        'dl',
        { class: 'detail-facts' },
        field('detail.company', v.company),
        field('detail.department', v.departmentName),
        field('detail.terminal', `${v.terminalId} · ${v.sim}`),
        v.cargo
          ? [
              field('detail.hazardClass', h('span', { class: 'hazard' }, v.cargo.hazardClass)),
              v.cargo.unNumber ? field('detail.unNumber', v.cargo.unNumber) : null,
              v.cargo.description ? field('detail.cargo', v.cargo.description) : null,
            ]
          : null,
      ),
      this.live,
      h('h3', null, t('detail.channels')),
      channels.length === 0
        ? h('p', { class: 'muted' }, t('detail.noChannels'))
        : h(
            'ul',
            { class: 'detail-channels' },
            channels.map((c) =>
              h(
                'li',
                { dataset: { camera: c.sourceId } },
                h('span', { class: 'channel-no' }, String(c.channel)),
                h('span', { class: 'channel-name' }, c.name),
                h('button', { type: 'button', class: 'pop-out', dataset: { camera: c.sourceId }, onclick: () => openPopout(c.sourceId) }, `⧉ ${t('detail.popOut')}`),
              ),
            ),
          ),
      h('div', { class: 'detail-wall' }, put, this.o.target.refusal ? h('p', { class: 'refusal muted' }, this.o.target.refusal) : null),
      h('h3', null, t('detail.alarms')),
      this.alarms,
    );
    this.renderLive(v, this.live);
    this.renderAlarms(v.id, this.alarms);
  }

  private renderLive(v: VehicleView, dl: HTMLDListElement) {
    const p = v.live.position;
    const field = (key: string, ...value: Child[]) => [h('dt', null, t(key)), h('dd', null, ...value)];
    replace(
      dl,
      field('detail.status', h('span', { class: `pill ${v.live.status}` }, t(v.live.status === 'online' ? 'common.online' : 'common.offline'))),
      p
        ? [
            field('detail.position', h('span', { class: 'detail-position' }, `${coordinate(p.lat, 'lat')}, ${coordinate(p.lon, 'lon')}`)),
            field('detail.positionAt', h('time', { title: fullTime(p.at), class: 'detail-time' }, shortTime(p.at))),
            field('detail.speed', `${speedLabel(p.speed)} · ${t('detail.heading', { degrees: Math.round(p.heading) })} · ${t(v.live.moving ? 'detail.moving' : 'detail.stopped')}`),
          ]
        : field('detail.position', h('span', { class: 'muted' }, t('detail.noPosition'))),
    );
  }

  private renderAlarms(vehicleId: string, box: HTMLElement) {
    const open = this.o.store.forVehicle(vehicleId);
    this.dropPictures(new Set(open.map((a) => a.id)));
    replace(
      box,
      open.length === 0
        ? h('p', { class: 'muted' }, t('detail.noAlarms'))
        : h(
            'ul',
            { class: 'detail-alarm-list' },
            open.map((a) =>
              h(
                'li',
                { dataset: { detailAlarm: a.id, state: a.state } },
                h(
                  'button',
                  { type: 'button', class: 'link', onclick: () => this.o.onRevealAlarm(a.id) },
                  h('span', { class: `pill severity ${a.severity}` }, severityLabel(a.severity)),
                  ` ${alarmTypeLabel(a.type)} · ${alarmStateLabel(a.state)} · ${shortTime(a.raisedAt)}`,
                ),
                this.pictureOf(a),
              ),
            ),
          ),
    );
  }
}
