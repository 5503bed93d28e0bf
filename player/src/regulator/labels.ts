/** The regulator's words in both languages, and the small formatters its panels share. */
import type { AlarmState, AlarmType, PlateColor, Severity, VehicleCategory } from '../../../gateway/src/vehicles/model.js';
import { h } from '../lib/dom.js';
import { addStrings, language, t } from '../lib/i18n.js';

addStrings({
  'reg.title': ['Vehicle supervision', '车辆监管'],
  'reg.vehicles': ['Vehicles', '车辆'],
  'reg.alarms': ['Open alarms', '未结束告警'],
  'reg.map': ['Map', '地图'],

  'category.passenger': ['Scheduled coach', '班线客车'],
  'category.tourist': ['Tourist coach', '旅游包车'],
  'category.dangerous-goods': ['Dangerous goods', '危险货物运输'],

  'category.short.passenger': ['Coach', '班线'],
  'category.short.tourist': ['Tourist', '旅游'],
  'category.short.dangerous-goods': ['Haz. goods', '危货'],

  'plateColor.blue': ['blue', '蓝牌'],
  'plateColor.yellow': ['yellow', '黄牌'],
  'plateColor.black': ['black', '黑牌'],
  'plateColor.white': ['white', '白牌'],
  'plateColor.green': ['green', '绿牌'],
  'plateColor.yellow-green': ['yellow-green', '黄绿牌'],
  'plateColor.other': ['other', '其他'],

  'alarmType.overspeed': ['Overspeed', '超速'],
  'alarmType.fatigue-driving': ['Fatigue driving', '疲劳驾驶'],
  'alarmType.distracted-driving': ['Distracted driving', '分神驾驶'],
  'alarmType.collision-warning': ['Collision warning', '前向碰撞预警'],
  'alarmType.lane-departure': ['Lane departure', '车道偏离'],
  'alarmType.tank-pressure': ['Tank pressure', '罐体压力异常'],
  'alarmType.tank-temperature': ['Tank temperature', '罐体温度异常'],
  'alarmType.leak': ['Leak', '泄漏'],
  'alarmType.emergency-button': ['Emergency button', '紧急报警'],
  'alarmType.geofence-enter': ['Entered a forbidden zone', '驶入禁行区域'],
  'alarmType.geofence-leave': ['Left a permitted zone', '驶离限定区域'],
  'alarmType.video-loss': ['Video loss', '视频信号丢失'],
  'alarmType.phone-use': ['Phone use', '接打手持电话'],
  'alarmType.smoking': ['Smoking', '抽烟'],
  'alarmType.driver-abnormal': ['Driver abnormal', '驾驶员异常'],
  'alarmType.camera-blocked': ['Driver camera blocked', '摄像头遮挡'],
  'alarmType.seatbelt': ['Seatbelt not fastened', '未系安全带'],
  'alarmType.hands-off-wheel': ['Hands off the wheel', '双手脱离方向盘'],
  'alarmType.following-too-close': ['Following too close', '车距过近'],
  'alarmType.pedestrian-collision': ['Pedestrian collision warning', '行人碰撞预警'],
  'alarmType.frequent-lane-change': ['Frequent lane changes', '频繁变道'],
  'alarmType.illegal-lane-change': ['Lane change across a solid line', '实线变道'],
  'alarmType.road-sign-violation': ['Road sign limit exceeded', '道路标识超限'],
  'alarmType.obstacle': ['Obstacle ahead', '障碍物'],
  'alarmType.blind-spot': ['Blind-spot warning', '盲区监测报警'],
  'alarmType.tyre-pressure': ['Tyre pressure', '胎压异常'],
  'alarmType.rollover': ['Rollover', '侧翻'],
  'alarmType.dangerous-driving': ['Dangerous driving', '危险驾驶行为'],
  'alarmType.power-failure': ['Main power lost', '主电源掉电'],
  'alarmType.video-occluded': ['Video occluded', '视频遮挡'],
  'alarmType.storage-fault': ['Video storage fault', '存储单元故障'],

  'severity.info': ['Info', '提示'],
  'severity.low': ['Low', '低'],
  'severity.medium': ['Medium', '中'],
  'severity.high': ['High', '高'],
  'severity.critical': ['Critical', '紧急'],

  'alarmState.raised': ['Raised', '未处理'],
  'alarmState.acknowledged': ['Acknowledged', '已确认'],
  'alarmState.closed': ['Closed', '已关闭'],

  'reg.kmh': ['{speed} km/h', '{speed} 公里/时'],
  'reg.never': ['never', '从未上报'],
});

export const categoryLabel = (c: VehicleCategory) => t(`category.${c}`);
/** For the list's narrow column; the full label is its tooltip. */
export const categoryShortLabel = (c: VehicleCategory) => t(`category.short.${c}`);
export const alarmTypeLabel = (type: AlarmType) => t(`alarmType.${type}`);
export const severityLabel = (s: Severity) => t(`severity.${s}`);
export const alarmStateLabel = (s: AlarmState) => t(`alarmState.${s}`);
export const speedLabel = (kmh: number) => t('reg.kmh', { speed: Math.round(kmh) });

/** A plate as it looks on the vehicle: the plate colour behind the characters. */
export function plateBadge(plate: string, color: PlateColor | null): HTMLSpanElement {
  return h('span', { class: `plate plate-${color ?? 'unknown'}`, title: color ? t(`plateColor.${color}`) : undefined }, plate);
}

/** Formatters are costly to make and a live list formats hundreds of times a second: one of each per language. */
const formatters = new Map<string, Intl.DateTimeFormat>();
function formatter(kind: 'time' | 'full'): Intl.DateTimeFormat {
  const key = `${language()}|${kind}`;
  let f = formatters.get(key);
  if (!f) {
    const locale = language() === 'zh' ? 'zh-CN' : 'en-GB';
    f = new Intl.DateTimeFormat(locale, kind === 'time' ? { hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false } : { dateStyle: 'short', timeStyle: 'medium', hour12: false });
    formatters.set(key, f);
  }
  return f;
}

/** Today's times as hh:mm:ss, older ones with their date: a regulator scans for what is recent. */
export function shortTime(at: number | null | undefined): string {
  if (at === null || at === undefined) return t('reg.never');
  const d = new Date(at);
  return d.toDateString() === new Date().toDateString() ? formatter('time').format(d) : formatter('full').format(d);
}

export const fullTime = (at: number) => formatter('full').format(at);

export function coordinate(value: number, axis: 'lat' | 'lon', decimals = 5): string {
  const hemisphere = axis === 'lat' ? (value >= 0 ? 'N' : 'S') : value >= 0 ? 'E' : 'W';
  return `${Math.abs(value).toFixed(decimals)}°${hemisphere}`;
}
