/**
 * Vehicles, their live state, alarms, geofences and linkage rules as the API and the WebSocket show
 * them. No imports, so the player and the simulator use these types as they are.
 */

export const VEHICLE_CATEGORIES = ['passenger', 'tourist', 'dangerous-goods'] as const;
export type VehicleCategory = (typeof VEHICLE_CATEGORIES)[number];

/** Plate colours of JT/T 697.7 (yellow for coaches and trucks, green for new-energy vehicles). */
export const PLATE_COLORS = ['blue', 'yellow', 'black', 'white', 'green', 'yellow-green', 'other'] as const;
export type PlateColor = (typeof PLATE_COLORS)[number];
/** JT/T 697.7 plate colour codes (JT/T 808 registration) as the registry names them. */
export const PLATE_COLOR_CODES: Readonly<Record<number, PlateColor>> = { 1: 'blue', 2: 'yellow', 3: 'black', 4: 'white', 5: 'green', 9: 'other', 93: 'yellow-green', 94: 'green' };

/** UN dangerous-goods classes and divisions (UN Model Regulations, GB 6944). */
export const HAZARD_CLASSES = [
  '1', '1.1', '1.2', '1.3', '1.4', '1.5', '1.6',
  '2', '2.1', '2.2', '2.3',
  '3',
  '4', '4.1', '4.2', '4.3',
  '5', '5.1', '5.2',
  '6', '6.1', '6.2',
  '7', '8', '9',
] as const;
export type HazardClass = (typeof HAZARD_CLASSES)[number];

export interface VehicleChannel {
  /** The terminal's logical channel, from 1 (JT/T 1078). */
  channel: number;
  /** What it looks at: front road, driver, cabin, cargo, rear, ... */
  name: string;
  /** The registered camera source; its sub-stream (when it has one) serves small tiles. */
  sourceId: string;
}

export interface Cargo {
  hazardClass: HazardClass;
  /** The four-digit UN number, e.g. 'UN1203' (petrol). */
  unNumber: string | null;
  description: string;
}

export interface Vehicle {
  id: string;
  /** Normalised: no spaces or separator dot, Latin letters upper case, e.g. '粤A12345'. */
  plate: string;
  plateColor: PlateColor;
  category: VehicleCategory;
  /** Dangerous goods only. */
  cargo: Cargo | null;
  company: string;
  departmentId: string;
  /** The onboard terminal's id and SIM (the JT/T 808 phone number). */
  terminalId: string;
  sim: string;
  channels: VehicleChannel[];
  tags: string[];
  version: number;
  createdAt: number;
  updatedAt: number;
}

export interface Position {
  lat: number;
  lon: number;
  /** km/h */
  speed: number;
  /** Degrees from north, 0 to 359. */
  heading: number;
  /** When the terminal took it (ms since the epoch). */
  at: number;
}

/** One item of a positions report (the feed's `positions`, and what the JT/T 808 service and the simulators send it). */
export interface PositionReport extends Position {
  vehicleId: string;
}

export type VehicleStatus = 'online' | 'offline';

export interface VehicleLive {
  position: Position | null;
  status: VehicleStatus;
  moving: boolean;
  /** When the gateway last heard from the vehicle. */
  lastReportAt: number | null;
  openAlarms: number;
}

export const ALARM_TYPES = [
  'overspeed',
  'fatigue-driving',
  'distracted-driving',
  'collision-warning',
  'lane-departure',
  'tank-pressure',
  'tank-temperature',
  'leak',
  'emergency-button',
  'geofence-enter',
  'geofence-leave',
  'video-loss',
  // Raised by JT/T 808 terminals: their alarm bits, the JT/T 1078 video alarms, and the ADAS/DSM/BSD/TPMS items.
  'phone-use',
  'smoking',
  'driver-abnormal',
  'camera-blocked',
  'seatbelt',
  'hands-off-wheel',
  'following-too-close',
  'pedestrian-collision',
  'frequent-lane-change',
  'illegal-lane-change',
  'road-sign-violation',
  'obstacle',
  'blind-spot',
  'tyre-pressure',
  'rollover',
  'dangerous-driving',
  'power-failure',
  'video-occluded',
  'storage-fault',
] as const;
export type AlarmType = (typeof ALARM_TYPES)[number];

export const SEVERITIES = ['info', 'low', 'medium', 'high', 'critical'] as const;
export type Severity = (typeof SEVERITIES)[number];

export type AlarmState = 'raised' | 'acknowledged' | 'closed';

/** Where an alarm's cameras went on a wall. */
export interface AlarmLinkage {
  ruleId: string;
  wallId: string;
  popupId: string;
  /** When the pop-up comes off the wall if the alarm is still open; null: when it closes. */
  until: number | null;
  /** Set once it came off (closure, timeout, an operator's dismissal). */
  endedAt: number | null;
}

export interface Alarm {
  id: string;
  vehicleId: string;
  plate: string;
  category: VehicleCategory;
  departmentId: string;
  type: AlarmType;
  severity: Severity;
  state: AlarmState;
  /** When the terminal first reported it. */
  raisedAt: number;
  /** The latest report of it (repeats and re-raises while open are folded into one alarm). */
  lastReportAt: number;
  occurrences: number;
  /** False once the terminal reports the condition over; the alarm stays open until someone closes it or it auto-closes. */
  active: boolean;
  clearedAt: number | null;
  position: Position | null;
  geofence: { id: string; name: string } | null;
  /** Reported long after it happened (a terminal catching up after losing coverage): recorded, never popped onto a wall. */
  late: boolean;
  detail: string;
  acknowledgedBy: string | null;
  acknowledgedAt: number | null;
  closedBy: string | null;
  closedAt: number | null;
  closeReason: 'handled' | 'cleared' | null;
  note: string | null;
  linkages: AlarmLinkage[];
  /** The picture taken when it opened (GET /api/alarms/:id/snapshot.jpg); null until taken, when none could be, and once pruned. */
  snapshot: AlarmSnapshot | null;
  /** Why there is no picture: the attempt's error (GW_ERR_CAMERA_UNREACHABLE, GW_ERR_CAPACITY for an alarm storm, ...). */
  snapshotError: AlarmSnapshotError | null;
}

/** An alarm's picture that could not be taken: the error as a viewing would have got it, for the page to word. */
export interface AlarmSnapshotError {
  code: string;
  /** In English, for API users and logs. */
  message: string;
  params?: Record<string, string | number>;
}

/** An alarm's evidence picture, without its bytes. */
export interface AlarmSnapshot {
  cameraId: string;
  /** When the keyframe it shows arrived (ms since the epoch). */
  takenAt: number;
  width: number;
  height: number;
}

export type GeofenceShape =
  | { kind: 'polygon'; points: [lon: number, lat: number][] }
  | { kind: 'circle'; center: [lon: number, lat: number]; radiusM: number };

/** What crossing a geofence means: e.g. dangerous goods may not enter a school zone. */
export interface GeofenceRule {
  /** 'enter': entering raises a geofence-enter alarm; 'leave': leaving raises geofence-leave. */
  forbid: 'enter' | 'leave';
  /** The categories the rule applies to; empty for every vehicle. */
  categories: VehicleCategory[];
  severity: Severity;
}

export interface Geofence {
  id: string;
  name: string;
  departmentId: string;
  shape: GeofenceShape;
  rules: GeofenceRule[];
  enabled: boolean;
  version: number;
}

/** When a matching alarm is raised, the vehicle's channels go onto reserved tiles of a wall. */
export interface LinkageRule {
  id: string;
  name: string;
  /** Alarms of vehicles in this department's subtree. */
  departmentId: string;
  match: {
    categories: VehicleCategory[];
    types: AlarmType[];
    minSeverity: Severity;
    /** Geofence alarms of these fences only; empty for any. */
    geofenceIds: string[];
  };
  wallId: string;
  /** The reserved tiles, filled in order with the chosen channels. */
  tileIds: string[];
  /** Channel numbers in the order they fill the tiles; empty for all, in channel order. */
  channels: number[];
  /** Pop-ups pre-empt content and pop-ups of lower priority. */
  priority: number;
  /** Seconds the pop-up stays while the alarm is open; 0 until it closes. */
  holdSec: number;
  enabled: boolean;
  version: number;
}

/** A position as subscribers receive it. */
export interface PositionUpdate extends Position {
  id: string;
  plate: string;
  category: VehicleCategory;
  status: VehicleStatus;
  moving: boolean;
}
