/**
 * The vehicles on a map. With the command centre's tile server configured it draws its tiles;
 * without one (no map server on the network) it draws a latitude/longitude grid whose spacing and
 * labels follow the zoom, so positions can still be read. Markers are circles: no image assets.
 */
import L from 'leaflet';
import type { PositionUpdate, VehicleCategory } from '../../../gateway/src/vehicles/model.js';
import type { UiSettings } from '../lib/api.js';
import { h } from '../lib/dom.js';
import { addStrings, t } from '../lib/i18n.js';
import { categoryLabel, coordinate, shortTime, speedLabel } from './labels.js';

addStrings({
  'map.tilesFailed': ['The map server does not answer: positions are drawn without the map', '地图服务器无响应：车辆位置仍按坐标显示'],
  'map.offline': ['Offline', '离线'],
  'map.alarmed': ['Open alarm', '有未结束告警'],
  'map.tooltip': ['{plate} · {speed} · {at}', '{plate} · {speed} · {at}'],
  'map.fitAll': ['Show every vehicle', '显示全部车辆'],
});

export const CATEGORY_COLOURS: Record<VehicleCategory, string> = {
  passenger: '#58a6ff',
  tourist: '#bc8cff',
  'dangerous-goods': '#f0883e',
};
const OFFLINE_COLOUR = '#6e7681';
const RAISED_COLOUR = '#f85149';
const ACKNOWLEDGED_COLOUR = '#d29922';

/**
 * Above this many vehicles the markers are painted on one canvas: thousands of SVG elements make
 * every zoom re-lay them all out. Below it they stay SVG elements a user (and a test) can pick.
 */
const SVG_MARKER_LIMIT = 2_500;

export type AlarmMark = 'raised' | 'acknowledged';

interface MarkerEntry {
  marker: L.CircleMarker;
  position: PositionUpdate;
  /** What its style was drawn from: a vehicle that only moved keeps it, and is not restyled. */
  look: string;
}

export class VehicleMap {
  readonly el: HTMLDivElement;
  readonly mode: 'tiles' | 'grid';
  private readonly map: L.Map;
  private readonly markers = new Map<string, MarkerEntry>();
  private alarmed = new Map<string, AlarmMark>();
  private selected: string | null = null;
  private renderer: L.Renderer = L.svg({ padding: 0.2 });
  private onCanvas = false;
  private fitted = false;
  private readonly graticule: Graticule | null = null;
  private readonly resize: ResizeObserver;
  /** Markers scale with the page's rem, so a 4K console shows them as large as a 1080p one. */
  private readonly scale = Math.max(1, parseFloat(getComputedStyle(document.documentElement).fontSize) / 14);

  constructor(
    parent: HTMLElement,
    settings: UiSettings['map'],
    private readonly onSelect: (vehicleId: string) => void,
  ) {
    this.mode = settings.tileUrl ? 'tiles' : 'grid';
    this.el = h('div', { class: `vehicle-map map-${this.mode}`, dataset: { mapMode: this.mode } });
    parent.append(this.el);
    const [lon, lat] = settings.centre;
    this.map = L.map(this.el, { center: [lat, lon], zoom: 12, minZoom: 3, maxZoom: settings.maxZoom, zoomControl: true, worldCopyJump: false });
    this.map.attributionControl.setPrefix('Leaflet');
    L.control.scale({ imperial: false }).addTo(this.map);
    this.legend().addTo(this.map);
    this.fitButton().addTo(this.map);
    if (settings.tileUrl) {
      const tiles = L.tileLayer(settings.tileUrl, { attribution: settings.attribution, maxZoom: settings.maxZoom });
      const notice = h('div', { class: 'map-notice', hidden: true }, t('map.tilesFailed'));
      this.el.append(notice);
      tiles.on('tileerror', () => (notice.hidden = false));
      tiles.on('tileload', () => (notice.hidden = true));
      tiles.addTo(this.map);
    } else {
      this.graticule = new Graticule(this.map);
    }
    this.resize = new ResizeObserver(() => this.map.invalidateSize({ pan: false }));
    this.resize.observe(this.el);
  }

  destroy(): void {
    this.resize.disconnect();
    this.graticule?.destroy();
    for (const { marker } of this.markers.values()) marker.remove();
    this.markers.clear();
    this.map.remove();
    this.el.remove();
  }

  /**
   * The subscription's answer: every vehicle the user may see that has a position. A marker not in
   * it is a vehicle deleted, or moved out of the user's departments, while nobody was told: it goes.
   * Returns the ids of the markers taken off.
   */
  replaceAll(positions: PositionUpdate[]): string[] {
    const present = new Set(positions.map((p) => p.id));
    const gone: string[] = [];
    for (const [id, entry] of this.markers) {
      if (present.has(id)) continue;
      entry.marker.remove();
      this.markers.delete(id);
      gone.push(id);
    }
    if (this.selected && gone.includes(this.selected)) this.selected = null;
    this.update(positions);
    return gone;
  }

  /** A batch from the subscription: the vehicles that changed. */
  update(positions: PositionUpdate[]): void {
    if (!this.onCanvas && this.markers.size + positions.filter((p) => !this.markers.has(p.id)).length > SVG_MARKER_LIMIT) this.moveToCanvas();
    for (const p of positions) {
      const entry = this.markers.get(p.id);
      if (entry) {
        entry.position = p;
        entry.marker.setLatLng([p.lat, p.lon]);
        this.style(p.id, entry);
        // An open tooltip was written when it opened: it follows the vehicle's speed and time too.
        if (entry.marker.isTooltipOpen()) entry.marker.getTooltip()?.update();
      } else {
        this.add(p);
      }
    }
    if (!this.fitted && this.markers.size > 0) {
      this.fitted = true;
      this.fitAll();
    }
  }

  fitAll(): void {
    const points = [...this.markers.values()].map(({ position: p }) => L.latLng(p.lat, p.lon));
    if (points.length === 0) return;
    this.map.fitBounds(L.latLngBounds(points), { padding: [40, 40], maxZoom: Math.min(15, this.map.getMaxZoom()), animate: false });
  }

  setAlarmed(alarmed: Map<string, AlarmMark>): void {
    const before = this.alarmed;
    this.alarmed = alarmed;
    for (const id of new Set([...before.keys(), ...alarmed.keys()])) {
      if (before.get(id) === alarmed.get(id)) continue;
      const entry = this.markers.get(id);
      if (entry) this.style(id, entry);
    }
  }

  select(vehicleId: string | null): void {
    const previous = this.selected;
    this.selected = vehicleId;
    for (const id of [previous, vehicleId]) {
      const entry = id ? this.markers.get(id) : undefined;
      if (entry && id) this.style(id, entry);
    }
    const entry = vehicleId ? this.markers.get(vehicleId) : undefined;
    if (entry && !this.map.getBounds().contains(entry.marker.getLatLng())) this.map.panTo(entry.marker.getLatLng());
  }

  /** Once, when the fleet outgrows SVG: the markers are drawn again on a canvas. */
  private moveToCanvas() {
    this.onCanvas = true;
    this.renderer = L.canvas({ padding: 0.1 });
    for (const entry of this.markers.values()) {
      entry.marker.remove();
      entry.marker.options.renderer = this.renderer;
      entry.marker.addTo(this.map);
      entry.look = '';
      this.style(entry.position.id, entry);
    }
  }

  private add(p: PositionUpdate) {
    const marker = L.circleMarker([p.lat, p.lon], { renderer: this.renderer, className: 'vehicle-marker', bubblingMouseEvents: false });
    const entry: MarkerEntry = { marker, position: p, look: '' };
    this.markers.set(p.id, entry);
    marker.bindTooltip(() => this.tooltip(entry.position), { direction: 'top', offset: [0, -6 * this.scale] });
    marker.on('click', () => this.onSelect(p.id));
    marker.addTo(this.map);
    marker.getElement()?.setAttribute('data-marker', p.id);
    this.style(p.id, entry);
  }

  private tooltip(p: PositionUpdate) {
    return h(
      'span',
      null,
      t('map.tooltip', { plate: p.plate, speed: speedLabel(p.speed), at: shortTime(p.at) }),
      h('br'),
      `${categoryLabel(p.category)} · ${coordinate(p.lat, 'lat')} ${coordinate(p.lon, 'lon')}`,
    );
  }

  private style(id: string, entry: MarkerEntry) {
    const { marker, position } = entry;
    const alarm = this.alarmed.get(id);
    const offline = position.status === 'offline';
    const selected = this.selected === id;
    const look = `${position.category}|${offline}|${alarm}|${selected}`;
    if (look === entry.look) return;
    entry.look = look;
    const s = this.scale;
    marker.setStyle({
      fillColor: offline ? OFFLINE_COLOUR : CATEGORY_COLOURS[position.category],
      fillOpacity: offline ? 0.45 : 0.9,
      color: selected ? '#ffffff' : alarm === 'raised' ? RAISED_COLOUR : alarm === 'acknowledged' ? ACKNOWLEDGED_COLOUR : '#0d1117',
      weight: (selected || alarm ? 3 : 1) * s,
      opacity: offline && !alarm && !selected ? 0.6 : 1,
    });
    marker.setRadius((alarm ? 8 : selected ? 8 : 5) * s);
    const el = marker.getElement();
    if (el) {
      el.classList.toggle('offline', offline);
      el.classList.toggle('alarmed', alarm !== undefined);
      el.classList.toggle('selected', selected);
      el.setAttribute('data-category', position.category);
    }
    // Alarmed and selected vehicles are drawn over the crowd.
    if (alarm || selected) marker.bringToFront();
  }

  private fitButton(): L.Control {
    const Fit = L.Control.extend({
      onAdd: () => {
        const button = h('a', { href: '#', role: 'button', class: 'map-fit', title: t('map.fitAll'), 'aria-label': t('map.fitAll') }, '⤢');
        L.DomEvent.disableClickPropagation(button);
        button.addEventListener('click', (e) => {
          e.preventDefault();
          this.fitAll();
        });
        return h('div', { class: 'leaflet-bar' }, button);
      },
    });
    return new Fit({ position: 'topleft' });
  }

  private legend(): L.Control {
    const swatch = (colour: string, label: string, ring?: string) =>
      h('li', null, h('span', { class: 'swatch', style: `background:${colour};${ring ? `box-shadow:0 0 0 2px ${ring}` : ''}` }), label);
    const Legend = L.Control.extend({
      onAdd: () =>
        h(
          'ul',
          { class: 'map-legend' },
          (Object.keys(CATEGORY_COLOURS) as VehicleCategory[]).map((c) => swatch(CATEGORY_COLOURS[c], categoryLabel(c))),
          swatch(OFFLINE_COLOUR, t('map.offline')),
          swatch('transparent', t('map.alarmed'), RAISED_COLOUR),
        ),
    });
    return new Legend({ position: 'bottomright' });
  }
}

/** Grid spacing candidates: 1, 2 and 5 times a power of ten, from 0.0001° to 20°. */
function niceStep(span: number, lines: number): number {
  const raw = span / lines;
  for (let exp = -4; exp <= 1; exp++) {
    for (const m of [1, 2, 5]) {
      const step = m * 10 ** exp;
      if (step >= raw) return step;
    }
  }
  return 20;
}

/** Lines of latitude and longitude over the visible map, labelled at its left and top edges. */
class Graticule {
  private readonly lines = L.layerGroup();
  private readonly labels = L.layerGroup();
  private readonly draw = () => this.redraw();

  constructor(private readonly map: L.Map) {
    for (const [name, z] of [['graticule', '350'], ['graticuleLabels', '380']] as const) {
      const pane = map.createPane(name);
      pane.style.zIndex = z;
      pane.style.pointerEvents = 'none';
    }
    this.lines.addTo(map);
    this.labels.addTo(map);
    map.on('moveend', this.draw);
    this.redraw();
  }

  destroy(): void {
    this.map.off('moveend', this.draw);
    this.lines.remove();
    this.labels.remove();
  }

  private redraw() {
    this.lines.clearLayers();
    this.labels.clearLayers();
    const view = this.map.getBounds();
    const south = Math.max(-85, view.getSouth());
    const north = Math.min(85, view.getNorth());
    const west = view.getWest();
    const east = view.getEast();
    if (!(north > south && east > west)) return;
    const latStep = niceStep(north - south, 6);
    const lonStep = niceStep(east - west, 6);
    const decimals = (step: number) => Math.max(0, -Math.floor(Math.log10(step) + 1e-9));
    // Lines run past the edges so a drag shows no bare border before the next redraw.
    const padLat = north - south;
    const padLon = east - west;
    const line = (points: L.LatLngExpression[]) =>
      L.polyline(points, { pane: 'graticule', interactive: false, color: '#3b4758', weight: 1, opacity: 0.9, className: 'graticule-line' });
    const label = (at: L.LatLngExpression, text: string, axis: 'lat' | 'lon') =>
      L.marker(at, {
        pane: 'graticuleLabels',
        interactive: false,
        keyboard: false,
        icon: L.divIcon({ className: `graticule-label graticule-${axis}`, iconSize: [0, 0], iconAnchor: [0, 0], html: h('span', null, text) }),
      });
    // A label half off the map is worse than none: those too near an edge are left out.
    const size = this.map.getSize();
    const edge = parseFloat(getComputedStyle(document.documentElement).fontSize);
    const clear = (at: number, length: number, margin: number, startMargin = margin) => at >= startMargin && at <= length - margin;
    // Left-edge labels also keep below the zoom buttons.
    const controls = this.map.getContainer().querySelector('.leaflet-top.leaflet-left')?.getBoundingClientRect().height ?? 0;
    for (let i = Math.ceil((south - padLat) / latStep); i * latStep <= north + padLat; i++) {
      const lat = i * latStep;
      if (lat < -85 || lat > 85) continue;
      this.lines.addLayer(line([[lat, west - padLon], [lat, east + padLon]]));
      if (lat >= south && lat <= north && clear(this.map.latLngToContainerPoint([lat, west]).y, size.y, edge * 2, Math.max(edge * 2, controls + edge / 2))) {
        this.labels.addLayer(label([lat, west], coordinate(lat, 'lat', decimals(latStep)), 'lat'));
      }
    }
    for (let i = Math.ceil((west - padLon) / lonStep); i * lonStep <= east + padLon; i++) {
      const lon = i * lonStep;
      this.lines.addLayer(line([[Math.max(-85, south - padLat), lon], [Math.min(85, north + padLat), lon]]));
      if (lon >= west && lon <= east && clear(this.map.latLngToContainerPoint([north, lon]).x, size.x, edge * 4)) {
        this.labels.addLayer(label([north, lon], coordinate(lon, 'lon', decimals(lonStep)), 'lon'));
      }
    }
  }
}
