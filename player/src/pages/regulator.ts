/**
 * The regulator's vehicle view: the fleet in a list and on a map, live; the open alarms to
 * acknowledge and close; and a vehicle's cameras onto a wall or into a window of their own.
 */
import type { PositionUpdate } from '../../../gateway/src/vehicles/model.js';
import { can, currentSession } from '../lib/api.js';
import { ControlConnection, LiveSubscription } from '../lib/control.js';
import { h, toast } from '../lib/dom.js';
import { errorText } from '../lib/errors.js';
import { addStrings, t } from '../lib/i18n.js';
import { onPageLeave, refuse, startPage } from '../lib/shell.js';
import { AlarmList, AlarmStore } from '../regulator/alarms.js';
import { VehicleMap } from '../regulator/map.js';
import { VehicleDetail } from '../regulator/vehicle-detail.js';
import { VehicleList } from '../regulator/vehicle-list.js';
import { VehicleDirectory } from '../regulator/vehicles.js';
import { WallTarget } from '../regulator/wall-target.js';
import '../styles/app.css';
import 'leaflet/dist/leaflet.css';
import '../styles/regulator.css';

addStrings({
  'reg.refused': ['Your roles do not include watching vehicles (vehicles:read)', '您的角色没有车辆监管权限（vehicles:read）'],
  'reg.subscribeFailed': ['Live positions are not coming in ({message}); trying again', '实时位置订阅失败（{message}），正在重试'],
});

/** A batch a second at most: a position map needs no more, and thousands of vehicles stay cheap. */
const POSITION_INTERVAL_MS = 1_000;

async function main() {
  const { main, session, settings } = await startPage({ title: 'reg.title', page: 'regulator' });
  if (!can('vehicles:read')) return refuse(main, t('reg.refused'));

  const conn = new ControlConnection(() => currentSession()?.token ?? '');
  const directory = new VehicleDirectory();
  const store = new AlarmStore(conn);
  const target = new WallTarget(conn, can('walls:drive'), session.user);

  const select = (vehicleId: string | null) => {
    list.select(vehicleId);
    map.select(vehicleId);
    if (vehicleId) void detail.show(vehicleId);
    else detail.hide();
  };
  const list = new VehicleList({ directory, alarmCount: (id) => (store.complete ? store.countFor(id) : null), onSelect: select });
  const alarms = new AlarmList({ store, target, directory, canHandle: can('alarms:handle'), username: session.user.username, onSelect: select });
  const detail = new VehicleDetail({ directory, store, target, onClose: () => select(null), onRevealAlarm: (id) => alarms.reveal(id) });

  const connection = h('div', { class: 'reg-connection', role: 'status' });
  const mapArea = h('section', { class: 'reg-map', 'aria-label': t('reg.map') });
  main.replaceChildren(h('div', { class: 'reg-layout' }, h('div', { class: 'reg-toolbar' }, target.el, connection), list.el, mapArea, alarms.el));
  const map = new VehicleMap(mapArea, settings.map, select);
  mapArea.append(detail.el);

  /**
   * Positions from the subscription: a batch of the vehicles that changed, or (`complete`) its
   * answer, every vehicle the user may see as it is now. One the page showed and the answer lacks
   * was deleted, or left the user's departments, while nobody said so: it goes.
   */
  const applyPositions = (positions: PositionUpdate[], complete: boolean) => {
    for (const p of positions) directory.applyPosition(p);
    if (complete) {
      const gone = map.replaceAll(positions);
      for (const id of gone) directory.forget(id);
      list.forget(gone);
      if (detail.vehicleId && gone.includes(detail.vehicleId)) select(null);
    } else {
      map.update(positions);
    }
    const ids = positions.map((p) => p.id);
    list.refresh(ids);
    if (detail.vehicleId && ids.includes(detail.vehicleId)) detail.refresh();
  };

  store.onChange((c) => {
    map.setAlarmed(store.alarmedVehicles());
    if (c.kind === 'reset') list.refreshAll();
    else list.refresh([c.alarm.vehicleId]);
    detail.refreshAlarms();
  });
  conn.on('vehicles.positions', (p) => applyPositions((p as { positions: PositionUpdate[] }).positions, false));
  // After a reconnection the batches missed meanwhile are gone: the answer is every vehicle as it is now.
  const positions = new LiveSubscription(
    conn,
    async () => applyPositions((await conn.request<{ vehicles: PositionUpdate[] }>('vehicles.subscribe', { intervalMs: POSITION_INTERVAL_MS })).vehicles, true),
    (err, tries) => {
      if (tries === 1) toast(t('reg.subscribeFailed', { message: errorText(err) }), 'error');
    },
  );
  conn.onState((s) => {
    connection.textContent = s === 'open' ? '' : t('common.disconnected');
    connection.classList.toggle('shown', s !== 'open');
  });
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && detail.vehicleId) select(null);
  });
  onPageLeave(() => {
    positions.stop();
    alarms.destroy();
    store.destroy();
    target.destroy();
    list.destroy();
    map.destroy();
    conn.close();
  });

  store.start();
  list.start();
  conn.connect();
}

void main();
