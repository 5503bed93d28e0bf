import type { GeofenceShape } from './model.js';

const EARTH_RADIUS_M = 6_371_008.8;
const rad = (deg: number) => (deg * Math.PI) / 180;

/** Great-circle distance in metres. */
export function distanceM(lon1: number, lat1: number, lon2: number, lat2: number): number {
  const dLat = rad(lat2 - lat1);
  const dLon = rad(lon2 - lon1);
  const a = Math.sin(dLat / 2) ** 2 + Math.cos(rad(lat1)) * Math.cos(rad(lat2)) * Math.sin(dLon / 2) ** 2;
  return 2 * EARTH_RADIUS_M * Math.asin(Math.min(1, Math.sqrt(a)));
}

export interface Bbox {
  minLon: number;
  minLat: number;
  maxLon: number;
  maxLat: number;
}

export const inBbox = (b: Bbox, lon: number, lat: number) => lon >= b.minLon && lon <= b.maxLon && lat >= b.minLat && lat <= b.maxLat;

/** Ray casting; fences are city-sized, so treating degrees as planar is accurate enough. */
function inPolygon(points: [number, number][], lon: number, lat: number): boolean {
  let inside = false;
  for (let i = 0, j = points.length - 1; i < points.length; j = i++) {
    const [xi, yi] = points[i]!;
    const [xj, yj] = points[j]!;
    if (yi > lat !== yj > lat && lon < ((xj - xi) * (lat - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

/** A shape with its bounding box worked out once, for a cheap first test per position. */
export class CompiledShape {
  readonly bbox: Bbox;
  constructor(readonly shape: GeofenceShape) {
    if (shape.kind === 'polygon') {
      const lons = shape.points.map((p) => p[0]);
      const lats = shape.points.map((p) => p[1]);
      this.bbox = { minLon: Math.min(...lons), maxLon: Math.max(...lons), minLat: Math.min(...lats), maxLat: Math.max(...lats) };
    } else {
      const [lon, lat] = shape.center;
      const dLat = shape.radiusM / 111_320;
      const dLon = dLat / Math.max(0.01, Math.cos(rad(lat)));
      this.bbox = { minLon: lon - dLon, maxLon: lon + dLon, minLat: lat - dLat, maxLat: lat + dLat };
    }
  }

  contains(lon: number, lat: number): boolean {
    if (!inBbox(this.bbox, lon, lat)) return false;
    const s = this.shape;
    return s.kind === 'polygon' ? inPolygon(s.points, lon, lat) : distanceM(s.center[0], s.center[1], lon, lat) <= s.radiusM;
  }
}
