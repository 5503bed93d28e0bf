import { ValidationError, notFound, type FieldIssue } from '../errors.js';
import type { Geofences } from './geofences.js';
import { linkageInput, type LinkageInput } from './input.js';
import type { Alarm, AlarmLinkage, AlarmType, LinkageRule } from './model.js';
import { severityRank, shortId, type LinkageTarget, type OpenAlarm, type VehicleActor, type VehicleContext, type VehicleEntry } from './context.js';

const ALARM_LABELS: Record<AlarmType, string> = {
  overspeed: '超速 overspeed',
  'fatigue-driving': '疲劳驾驶 fatigue',
  'distracted-driving': '分神驾驶 distracted',
  'collision-warning': '碰撞预警 collision warning',
  'lane-departure': '车道偏离 lane departure',
  'tank-pressure': '罐体压力 tank pressure',
  'tank-temperature': '罐体温度 tank temperature',
  leak: '泄漏 leak',
  'emergency-button': '紧急报警 emergency button',
  'geofence-enter': '驶入禁区 geofence entered',
  'geofence-leave': '驶离区域 geofence left',
  'video-loss': '视频丢失 video loss',
  'phone-use': '接打电话 phone use',
  'smoking': '抽烟 smoking',
  'driver-abnormal': '驾驶员异常 driver abnormal',
  'camera-blocked': '摄像头遮挡 camera blocked',
  'seatbelt': '未系安全带 seatbelt',
  'hands-off-wheel': '双手脱把 hands off wheel',
  'following-too-close': '车距过近 following too close',
  'pedestrian-collision': '行人碰撞 pedestrian collision',
  'frequent-lane-change': '频繁变道 frequent lane change',
  'illegal-lane-change': '实线变道 solid-line lane change',
  'road-sign-violation': '标识超限 road sign',
  'obstacle': '障碍物 obstacle',
  'blind-spot': '盲区报警 blind spot',
  'tyre-pressure': '胎压异常 tyre pressure',
  'rollover': '侧翻 rollover',
  'dangerous-driving': '危险驾驶 dangerous driving',
  'power-failure': '主电源掉电 power lost',
  'video-occluded': '视频遮挡 video occluded',
  'storage-fault': '存储故障 storage fault',
};

/** What linkage needs of the alarms section: the alarms open now. */
export interface OpenAlarms {
  all(): Iterable<OpenAlarm>;
  isOpen(o: OpenAlarm): boolean;
}

/**
 * Linkage rules: an alarm that matches one puts the vehicle's channels on a wall as a pop-up (through
 * the LinkageTarget app.ts wires), held for the rule's holdSec or until the alarm closes.
 */
export class Linkage {
  private readonly rules = new Map<string, LinkageRule>();

  constructor(
    private readonly ctx: VehicleContext,
    private readonly target: LinkageTarget,
    private readonly geofences: Geofences,
    private readonly open: OpenAlarms,
  ) {}

  async load() {
    for (const r of await this.ctx.store.rules.all('linkage')) this.rules.set(r.id, JSON.parse(r.doc) as LinkageRule);
  }

  /** Every rule again from the store (another node changed them). */
  async reload() {
    const rows = await this.ctx.store.rules.all('linkage');
    this.rules.clear();
    for (const r of rows) this.rules.set(r.id, JSON.parse(r.doc) as LinkageRule);
  }

  ruleList(actor: VehicleActor): LinkageRule[] {
    const ranges = this.ctx.ranges(actor);
    return [...this.rules.values()].filter((r) => this.ctx.tree.within(r.departmentId, ranges));
  }

  async putLinkageRule(actor: VehicleActor, id: string | null, raw: unknown, version: number | null): Promise<LinkageRule> {
    const input: LinkageInput = linkageInput.parse(raw);
    if (id !== null) {
      const current = this.rules.get(id);
      if (!current || !this.ctx.visible(actor, current.departmentId)) throw notFound(`linkage rule "${id}"`);
    }
    this.target.checkTarget(actor, input.wallId, input.tileIds);
    const issues: FieldIssue[] = [];
    (input.match.geofenceIds ?? []).forEach((g, i) => {
      const fence = this.geofences.fence(g);
      if (!fence || !this.ctx.visible(actor, fence.departmentId)) issues.push({ field: `match.geofenceIds[${i}]`, message: `no geofence "${g}" in your scope` });
    });
    if (issues.length) throw new ValidationError(issues);
    const rule: LinkageRule = {
      id: id ?? input.id ?? shortId('link'),
      name: input.name,
      departmentId: input.departmentId,
      match: { categories: input.match.categories ?? [], types: input.match.types ?? [], minSeverity: input.match.minSeverity ?? 'info', geofenceIds: input.match.geofenceIds ?? [] },
      wallId: input.wallId,
      tileIds: input.tileIds,
      channels: input.channels ?? [],
      priority: input.priority,
      holdSec: input.holdSec ?? 0,
      enabled: input.enabled ?? true,
      version: (version ?? 0) + 1,
    };
    await this.ctx.putRule('linkage', actor, rule, version);
    this.rules.set(rule.id, rule);
    return rule;
  }

  async deleteLinkageRule(actor: VehicleActor, id: string): Promise<void> {
    const current = this.rules.get(id);
    if (!current || !this.ctx.visible(actor, current.departmentId)) throw notFound(`linkage rule "${id}"`);
    await this.ctx.store.rules.delete('linkage', id, this.ctx.audit(actor, 'linkage.delete', id, current.departmentId, { name: current.name }));
    this.rules.delete(id);
  }

  private matches(rule: LinkageRule, alarm: Alarm): boolean {
    const m = rule.match;
    const tree = this.ctx.tree;
    if (!rule.enabled || !tree.within(alarm.departmentId, tree.rangesFor([rule.departmentId]))) return false;
    if (m.categories.length && !m.categories.includes(alarm.category)) return false;
    if (m.types.length && !m.types.includes(alarm.type)) return false;
    if (severityRank(alarm.severity) < severityRank(m.minSeverity)) return false;
    if (m.geofenceIds.length && !(alarm.geofence && m.geofenceIds.includes(alarm.geofence.id))) return false;
    return true;
  }

  /**
   * Puts the vehicle's channels on the wall of every matching rule; the streams are pre-warmed there.
   * Returns the cameras of the first rule it acted on (the alarm's picture is taken from the first).
   */
  link(o: OpenAlarm, entry: VehicleEntry): string[] {
    const alarm = o.alarm;
    const now = this.ctx.clock();
    const shows: Promise<unknown>[] = [];
    let linked: string[] = [];
    for (const rule of this.rules.values()) {
      if (!this.matches(rule, alarm) || alarm.linkages.some((l) => l.ruleId === rule.id)) continue;
      const channels = rule.channels.length
        ? rule.channels.map((n) => entry.vehicle.channels.find((c) => c.channel === n)).filter((c) => c !== undefined)
        : entry.vehicle.channels;
      if (channels.length === 0) continue;
      const linkage: AlarmLinkage = { ruleId: rule.id, wallId: rule.wallId, popupId: shortId('pop'), until: rule.holdSec ? now + rule.holdSec * 1000 : null, endedAt: null };
      alarm.linkages.push(linkage);
      const cameraIds = channels.map((c) => c.sourceId);
      if (linked.length === 0) linked = cameraIds;
      const shown = this.target
        .show({
          id: linkage.popupId,
          wallId: rule.wallId,
          label: `${alarm.plate} ${ALARM_LABELS[alarm.type]}`,
          priority: rule.priority,
          alarmId: alarm.id,
          vehicleId: alarm.vehicleId,
          tileIds: rule.tileIds,
          cameraIds,
          prewarmHoldMs: this.ctx.config.linkageHoldMs,
        })
        .then(
          (result) => {
            if (!result) linkage.endedAt = this.ctx.clock();
            else if (linkage.until !== null) this.armHold(o, linkage, linkage.until - this.ctx.clock());
          },
          (err: Error) => {
            linkage.endedAt = this.ctx.clock();
            this.ctx.log.error({ alarm: alarm.id, rule: rule.id, err: err.message }, 'alarm linkage failed');
          },
        );
      shows.push(shown);
    }
    if (shows.length) {
      o.linking = this.ctx.track(
        Promise.all([o.linking, ...shows]).then(() => {
          if (!this.open.isOpen(o)) return;
          this.ctx.events.emit('alarm', alarm, 'updated');
          return this.ctx.persist(alarm).catch(() => undefined);
        }),
      );
    }
    return linked;
  }

  /** A rule's holdSec: the pop-up comes off while the alarm stays open. */
  armHold(o: OpenAlarm, linkage: AlarmLinkage, inMs: number) {
    const timer = setTimeout(() => {
      if (!this.open.isOpen(o) || linkage.endedAt !== null) return;
      void this.ctx.track(
        this.endLinkage(linkage).then(() => {
          this.ctx.events.emit('alarm', o.alarm, 'updated');
          return this.ctx.persist(o.alarm).catch(() => undefined);
        }),
      );
    }, Math.max(0, inMs));
    timer.unref();
    o.timers.push(timer);
  }

  async endLinkage(linkage: AlarmLinkage) {
    linkage.endedAt = this.ctx.clock();
    try {
      await this.target.clear(linkage.popupId);
    } catch (err) {
      this.ctx.log.error({ popup: linkage.popupId, err: (err as Error).message }, 'alarm pop-up did not come off the wall');
    }
  }

  /** An operator took a pop-up off a wall: the alarm stays open, without it. */
  popupDismissed(popupId: string) {
    for (const o of this.open.all()) {
      const l = o.alarm.linkages.find((x) => x.popupId === popupId && x.endedAt === null);
      if (!l) continue;
      l.endedAt = this.ctx.clock();
      this.ctx.events.emit('alarm', o.alarm, 'updated');
      void this.ctx.persist(o.alarm).catch(() => undefined);
    }
  }

  /** Is this pop-up one an open alarm still shows? (Startup reconciles the walls with it.) */
  hasPopup(popupId: string): boolean {
    for (const o of this.open.all()) if (o.alarm.linkages.some((l) => l.popupId === popupId && l.endedAt === null)) return true;
    return false;
  }
}
