import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { literals } from '../../lib/schema-check.js';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Guards } from '../../auth/plugin.js';
import type { Principal } from '../../auth/users.js';
import { ValidationError } from '../../errors.js';
import { importRows } from '../../registry/import-parse.js';
import type { ImportSlots } from '../../registry/import-slots.js';
import type { ImportMode } from '../../registry/service.js';
import { ALARM_ACTION, ALARMS_REPORT, GEOFENCE_INPUT, LINKAGE_INPUT, POSITIONS_REPORT, timeOf, VEHICLE_BODY, VEHICLE_INPUT_FIELDS } from '../../vehicles/input.js';
import { ALARM as alarm, POSITION } from '../../vehicles/messages.js';
import { ALARM_TYPES, SEVERITIES, VEHICLE_CATEGORIES, type Alarm } from '../../vehicles/model.js';
import type { VehicleEntry, VehicleService } from '../../vehicles/service.js';
import {
  acceptImportBodies,
  checkedBy,
  etag,
  exportResponse,
  IMPORT_REJECTED,
  IMPORT_REPORT,
  ifMatch,
  importFormat,
  NO_CONTENT,
  orNull,
  parseBbox,
  sendExport,
  STREAMED_IMPORT,
  streamedImport,
} from './shared.js';

const ID = Type.String({ minLength: 1, maxLength: 64 });
const idParams = Type.Object({ id: ID });
type IdParams = Static<typeof idParams>;
/** The bodies are vehicles/input.ts's schemas, the ones the WebSocket and the import check with. */
const noteBody = Type.Omit(ALARM_ACTION, ['alarmId']);
const TIME_TEXT = Type.String({ maxLength: 40, description: 'ms since the epoch, or ISO 8601' });

const listQuery = (max: number) =>
  Type.Object(
    {
      departmentId: Type.Optional(ID),
      category: Type.Optional(literals(VEHICLE_CATEGORIES)),
      company: Type.Optional(Type.String({ minLength: 1, maxLength: 100 })),
      status: Type.Optional(literals(['online', 'offline'] as const)),
      moving: Type.Optional(Type.Boolean()),
      alarm: Type.Optional(literals(['open', 'none'] as const)),
      q: Type.Optional(Type.String({ maxLength: 100 })),
      bbox: Type.Optional(Type.String({ description: 'minLon,minLat,maxLon,maxLat' })),
      cursor: Type.Optional(Type.String({ maxLength: 200 })),
      limit: Type.Integer({ minimum: 1, maximum: max, default: 100 }),
    },
    { additionalProperties: false },
  );

const alarmQuery = (max: number) =>
  Type.Object(
    {
      state: Type.Optional(Type.String({ pattern: '^(raised|acknowledged|closed)(,(raised|acknowledged|closed))*$' })),
      vehicleId: Type.Optional(ID),
      type: Type.Optional(literals(ALARM_TYPES)),
      since: Type.Optional(TIME_TEXT),
      cursor: Type.Optional(Type.String({ maxLength: 200 })),
      limit: Type.Integer({ minimum: 1, maximum: max, default: 100 }),
    },
    { additionalProperties: false },
  );

/** The list's filters, for an export of every alarm they match. */
const alarmExportQuery = Type.Object(
  {
    format: literals(['csv', 'ndjson'] as const),
    state: Type.Optional(Type.String({ pattern: '^(raised|acknowledged|closed)(,(raised|acknowledged|closed))*$' })),
    vehicleId: Type.Optional(ID),
    type: Type.Optional(literals(ALARM_TYPES)),
    since: Type.Optional(TIME_TEXT),
  },
  { additionalProperties: false },
);
const ALARM_EXPORT_COLUMNS = [
  'id',
  'plate',
  'vehicleId',
  'departmentId',
  'type',
  'severity',
  'state',
  'raisedAt',
  'lastReportAt',
  'occurrences',
  'lat',
  'lon',
  'geofence',
  'detail',
  'late',
  'acknowledgedBy',
  'acknowledgedAt',
  'closedBy',
  'closedAt',
  'closeReason',
  'note',
  'snapshotUrl',
  'snapshotTakenAt',
  'snapshotCameraId',
  'snapshotError',
] as const;
const EXPORT_PAGE = 500;
const isoTime = (ms: number | null | undefined) => (ms === null || ms === undefined ? null : new Date(ms).toISOString());
const snapshotPath = (id: string) => `/api/alarms/${encodeURIComponent(id)}/snapshot.jpg`;

/** An alarm as a row of the export: times in ISO 8601, its picture by the URL that serves it. */
function alarmExportRow(a: Alarm): Record<(typeof ALARM_EXPORT_COLUMNS)[number], unknown> {
  return {
    id: a.id,
    plate: a.plate,
    vehicleId: a.vehicleId,
    departmentId: a.departmentId,
    type: a.type,
    severity: a.severity,
    state: a.state,
    raisedAt: isoTime(a.raisedAt),
    lastReportAt: isoTime(a.lastReportAt),
    occurrences: a.occurrences,
    lat: a.position?.lat ?? null,
    lon: a.position?.lon ?? null,
    geofence: a.geofence?.name ?? null,
    detail: a.detail,
    late: a.late,
    acknowledgedBy: a.acknowledgedBy,
    acknowledgedAt: isoTime(a.acknowledgedAt),
    closedBy: a.closedBy,
    closedAt: isoTime(a.closedAt),
    closeReason: a.closeReason,
    note: a.note,
    snapshotUrl: a.snapshot ? snapshotPath(a.id) : null,
    snapshotTakenAt: isoTime(a.snapshot?.takenAt),
    snapshotCameraId: a.snapshot?.cameraId ?? null,
    snapshotError: a.snapshotError?.code ?? null,
  };
}
// ---- what the routes answer: vehicles/model.ts's types ----
const MS = Type.Integer({ description: 'ms since the epoch' });
const vehicleView = Type.Object({
  id: Type.String(),
  plate: Type.String(),
  plateColor: Type.String(),
  category: literals(VEHICLE_CATEGORIES),
  cargo: orNull(Type.Object({}, { additionalProperties: true, description: 'dangerous goods: class, UN number, name' })),
  company: Type.String(),
  departmentId: Type.String(),
  departmentName: Type.String(),
  terminalId: Type.String(),
  sim: Type.String(),
  channels: Type.Array(Type.Object({}, { additionalProperties: true, description: 'a channel: its number and camera' })),
  tags: Type.Array(Type.String()),
  version: Type.Integer(),
  createdAt: MS,
  updatedAt: MS,
  live: Type.Object({
    position: orNull(POSITION),
    status: literals(['online', 'offline'] as const),
    moving: Type.Boolean(),
    lastReportAt: orNull(MS),
    openAlarms: Type.Integer(),
  }),
});
const rejectedItems = Type.Array(Type.Object({ index: Type.Integer(), field: Type.String(), message: Type.String() }));
const positionsOutcome = Type.Object({ accepted: Type.Integer(), outOfOrder: Type.Integer(), stale: Type.Integer(), rejected: rejectedItems });
const alarmsOutcome = Type.Object({ raised: Type.Array(Type.String()), repeated: Type.Array(Type.String()), cleared: Type.Array(Type.String()), rejected: rejectedItems });
const versioned = (what: string) => Type.Object({ id: Type.String(), name: Type.String(), departmentId: Type.String(), enabled: Type.Boolean(), version: Type.Integer() }, { description: what });
const GEOFENCE = versioned('a geofence: its shape (polygon or circle) and rules, as GEOFENCE_INPUT');
const LINKAGE_RULE = versioned('a linkage rule: what it matches and the wall tiles it fills, as LINKAGE_INPUT');

const trackQuery = Type.Object({ from: Type.Optional(TIME_TEXT), to: Type.Optional(TIME_TEXT) }, { additionalProperties: false });
const importQuery = Type.Object({ mode: literals(['all-or-nothing', 'keep-valid'] as const) }, { additionalProperties: false });

function queryTime(field: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const t = /^\d+$/.test(text) ? Number(text) : timeOf(text);
  if (!Number.isFinite(t)) throw new ValidationError([{ field: `querystring.${field}`, message: 'expected ms since the epoch or an ISO 8601 time' }]);
  return t;
}

export interface VehicleRouteOptions {
  vehicles: VehicleService;
  guards: Guards;
  pageSizeMax: number;
  importMaxRows: number;
  importMaxBytes: number;
  importSlots: ImportSlots;
}

/** Vehicles, the feed's batches, alarms, geofences and linkage rules over REST. */
export async function vehicleRoutes(app: FastifyInstance, o: VehicleRouteOptions) {
  const { vehicles, guards } = o;
  const actor = (req: FastifyRequest) => req.principal as Principal;
  acceptImportBodies(app);
  const send = (reply: FastifyReply, entry: VehicleEntry, status = 200) => reply.status(status).header('etag', etag(entry.vehicle.version)).send(vehicles.view(entry));

  app.get<{ Querystring: Static<ReturnType<typeof listQuery>> }>(
    '/api/vehicles',
    { onRequest: guards.require('vehicles:read'), schema: { querystring: listQuery(o.pageSizeMax), response: { 200: Type.Object({ items: Type.Array(vehicleView), nextCursor: orNull(Type.String()) }) } } },
    async (req) => {
      const { bbox, ...rest } = req.query;
      const page = vehicles.list(actor(req), { ...rest, bbox: parseBbox(bbox) });
      return { items: page.items.map((e) => vehicles.view(e)), nextCursor: page.nextCursor };
    },
  );

  app.post<{ Body: Record<string, unknown> }>('/api/vehicles', { onRequest: guards.require('vehicles:write'), ...checkedBy({ body: VEHICLE_BODY }, { response: { 201: vehicleView } }) }, async (req, reply) => {
    const entry = await vehicles.create(actor(req), req.body);
    return send(reply.header('location', `/api/vehicles/${encodeURIComponent(entry.vehicle.id)}`), entry, 201);
  });

  app.post<{ Querystring: Static<typeof importQuery> }>(
    '/api/vehicles/import',
    { onRequest: guards.require('vehicles:write'), schema: { querystring: importQuery, body: STREAMED_IMPORT('vehicle'), response: { 200: IMPORT_REPORT, 422: IMPORT_REJECTED } } },
    async (req, reply) => {
      const format = importFormat(req);
      const report = await streamedImport(req, o.importSlots, o.importMaxBytes, (body) => {
        const rows = importRows(format, body, { fields: VEHICLE_INPUT_FIELDS, aliases: { department: 'departmentId', department_id: 'departmentId', plate_color: 'plateColor', hazard_class: 'hazardClass', un_number: 'unNumber', terminal_id: 'terminalId' } });
        return vehicles.importVehicles(actor(req), rows, req.query.mode as ImportMode, o.importMaxRows);
      });
      if (!report.applied) {
        return reply.status(422).send({ code: 'GW_ERR_IMPORT_REJECTED', message: `${report.rejected} of ${report.rows} rows rejected; nothing was imported`, params: { reason: 'rows', rejected: report.rejected, rows: report.rows }, report });
      }
      return report;
    },
  );

  app.get<{ Params: IdParams }>('/api/vehicles/:id', { onRequest: guards.require('vehicles:read'), schema: { params: idParams, response: { 200: vehicleView } } }, async (req, reply) =>
    send(reply, vehicles.entry(actor(req), req.params.id)),
  );

  for (const method of ['PUT', 'PATCH'] as const) {
    app.route<{ Params: IdParams; Body: Record<string, unknown> }>({
      method,
      url: '/api/vehicles/:id',
      onRequest: guards.require('vehicles:write'),
      ...checkedBy({ params: idParams, body: VEHICLE_BODY }, { response: { 200: vehicleView } }),
      handler: async (req, reply) => send(reply, await vehicles.update(actor(req), req.params.id, req.body, ifMatch(req, true)!, method === 'PATCH')),
    });
  }

  app.delete<{ Params: IdParams }>('/api/vehicles/:id', { onRequest: guards.require('vehicles:write'), schema: { params: idParams, response: { 204: NO_CONTENT } } }, async (req, reply) => {
    await vehicles.delete(actor(req), req.params.id, ifMatch(req, false));
    return reply.status(204).send();
  });

  app.get<{ Params: IdParams; Querystring: Static<typeof trackQuery> }>(
    '/api/vehicles/:id/track',
    { onRequest: guards.require('vehicles:read'), schema: { params: idParams, querystring: trackQuery, response: { 200: Type.Object({ vehicleId: Type.String(), points: Type.Array(POSITION) }) } } },
    async (req) => ({ vehicleId: req.params.id, points: await vehicles.track(actor(req), req.params.id, queryTime('from', req.query.from), queryTime('to', req.query.to)) }),
  );

  // ---- the feed ----

  app.post<{ Body: Static<typeof POSITIONS_REPORT> }>('/api/feed/positions', { onRequest: guards.require('vehicles:feed'), ...checkedBy({ body: POSITIONS_REPORT }, { response: { 200: positionsOutcome } }) }, async (req) =>
    vehicles.reportPositions(actor(req), req.body.positions),
  );
  app.post<{ Body: Static<typeof ALARMS_REPORT> }>('/api/feed/alarms', { onRequest: guards.require('vehicles:feed'), ...checkedBy({ body: ALARMS_REPORT }, { response: { 200: alarmsOutcome } }) }, async (req) =>
    vehicles.reportAlarms(actor(req), req.body.alarms),
  );

  // ---- alarms ----

  app.get<{ Querystring: Static<ReturnType<typeof alarmQuery>> }>(
    '/api/alarms',
    { onRequest: guards.require('vehicles:read'), schema: { querystring: alarmQuery(o.pageSizeMax), response: { 200: Type.Object({ items: Type.Array(alarm), nextCursor: orNull(Type.String()) }) } } },
    async (req) => {
      const { state, since, ...rest } = req.query;
      return vehicles.listAlarms(actor(req), { ...rest, state: state?.split(',') as ('raised' | 'acknowledged' | 'closed')[] | undefined, since: queryTime('since', since) });
    },
  );
  app.get<{ Querystring: Static<typeof alarmExportQuery> }>(
    '/api/alarms/export',
    { onRequest: guards.require('vehicles:read'), schema: { querystring: alarmExportQuery, response: exportResponse } },
    async (req, reply) => {
      const { format, state, since, ...rest } = req.query;
      const principal = actor(req);
      // Checked before the first byte: a bad time is a 400, not a file cut short.
      const filter = { ...rest, state: state?.split(',') as Alarm['state'][] | undefined, since: queryTime('since', since) };
      async function* rows() {
        let count = 0;
        let cursor: string | undefined;
        do {
          const page = await vehicles.listAlarms(principal, { ...filter, cursor, limit: EXPORT_PAGE });
          for (const a of page.items) yield alarmExportRow(a);
          count += page.items.length;
          cursor = page.nextCursor ?? undefined;
        } while (cursor);
        req.log.info({ count, format }, 'alarms exported');
      }
      return sendExport(reply, 'alarms', format, ALARM_EXPORT_COLUMNS, rows());
    },
  );
  app.get<{ Params: IdParams }>('/api/alarms/:id', { onRequest: guards.require('vehicles:read'), schema: { params: idParams, response: { 200: alarm } } }, async (req) => vehicles.getAlarm(actor(req), req.params.id));
  app.get<{ Params: IdParams }>(
    '/api/alarms/:id/snapshot.jpg',
    {
      onRequest: guards.require('vehicles:read'),
      schema: {
        params: idParams,
        response: { 200: { description: 'The picture taken when the alarm opened.', content: { 'image/jpeg': { schema: { type: 'string', format: 'binary' } } } } },
      },
    },
    async (req, reply) => {
      const shot = await vehicles.alarmSnapshot(actor(req), req.params.id);
      // An alarm's picture never changes; it only goes (pruned), and then this answers 404.
      return reply
        .header('content-type', 'image/jpeg')
        .header('cache-control', 'private, max-age=3600')
        .header('last-modified', new Date(shot.takenAt).toUTCString())
        .send(shot.jpeg);
    },
  );
  // The note is optional, and so is a body at all.
  const alarmAction = { params: idParams, body: noteBody };
  app.post<{ Params: IdParams; Body: Static<typeof noteBody> }>('/api/alarms/:id/ack', { onRequest: guards.require('alarms:handle'), ...checkedBy(alarmAction, { response: { 200: alarm } }) }, async (req) =>
    vehicles.acknowledge(actor(req), req.params.id, req.body.note),
  );
  app.post<{ Params: IdParams; Body: Static<typeof noteBody> }>('/api/alarms/:id/close', { onRequest: guards.require('alarms:handle'), ...checkedBy(alarmAction, { response: { 200: alarm } }) }, async (req) =>
    vehicles.closeAlarmById(actor(req), req.params.id, req.body.note),
  );

  // ---- geofences and linkage rules: the same four routes each ----

  const ruleRoutes = (
    base: string,
    body: TSchema,
    doc: TSchema,
    list: (a: Principal) => unknown[],
    put: (a: Principal, id: string | null, body: unknown, version: number | null) => Promise<unknown>,
    remove: (a: Principal, id: string) => Promise<void>,
  ) => {
    app.get(base, { onRequest: guards.require('vehicles:read'), schema: { response: { 200: Type.Object({ items: Type.Array(doc) }) } } }, async (req) => ({ items: list(actor(req)) }));
    app.post<{ Body: Record<string, unknown> }>(base, { onRequest: guards.require('vehicles:rules'), ...checkedBy({ body }, { response: { 201: doc } }) }, async (req, reply) => {
      const doc = (await put(actor(req), null, req.body, null)) as { version: number };
      return reply.status(201).header('etag', etag(doc.version)).send(doc);
    });
    app.put<{ Params: IdParams; Body: Record<string, unknown> }>(`${base}/:id`, { onRequest: guards.require('vehicles:rules'), ...checkedBy({ params: idParams, body }, { response: { 200: doc } }) }, async (req, reply) => {
      const doc = (await put(actor(req), req.params.id, req.body, ifMatch(req, true)!)) as { version: number };
      return reply.header('etag', etag(doc.version)).send(doc);
    });
    app.delete<{ Params: IdParams }>(`${base}/:id`, { onRequest: guards.require('vehicles:rules'), schema: { params: idParams, response: { 204: NO_CONTENT } } }, async (req, reply) => {
      await remove(actor(req), req.params.id);
      return reply.status(204).send();
    });
  };
  ruleRoutes('/api/geofences', GEOFENCE_INPUT, GEOFENCE, (a) => vehicles.geofenceList(a), (a, id, body, v) => vehicles.putGeofence(a, id, body, v), (a, id) => vehicles.deleteGeofence(a, id));
  ruleRoutes('/api/linkage-rules', LINKAGE_INPUT, LINKAGE_RULE, (a) => vehicles.ruleList(a), (a, id, body, v) => vehicles.putLinkageRule(a, id, body, v), (a, id) => vehicles.deleteLinkageRule(a, id));
}
