import { Type } from '@sinclair/typebox';

/**
 * Every error a client can see has a stable GW_ERR_* code and an HTTP status, declared here once.
 * docs/errors.md documents each code; a test keeps the two in step.
 */
export const errorCodes = {
  GW_ERR_VALIDATION: 400,
  GW_ERR_BAD_MESSAGE: 400,
  GW_ERR_BAD_CURSOR: 400,
  GW_ERR_UNAUTHENTICATED: 401,
  GW_ERR_LOGIN_FAILED: 401,
  GW_ERR_FORBIDDEN: 403,
  GW_ERR_NOT_FOUND: 404,
  GW_ERR_CONFLICT: 409,
  GW_ERR_VERSION_CONFLICT: 412,
  GW_ERR_LOCKED: 423,
  GW_ERR_PRECONDITION_REQUIRED: 428,
  GW_ERR_RATE_LIMITED: 429,
  GW_ERR_PAYLOAD_TOO_LARGE: 413,
  GW_ERR_UNSUPPORTED_MEDIA_TYPE: 415,
  GW_ERR_UNSUPPORTED: 422,
  GW_ERR_IMPORT_REJECTED: 422,
  GW_ERR_LOGIN_LOCKED: 429,
  GW_ERR_USER_QUOTA: 429,
  GW_ERR_INTERNAL: 500,
  GW_ERR_CAMERA_UNREACHABLE: 502,
  GW_ERR_CAMERA_AUTH: 502,
  GW_ERR_CAMERA_NO_VIDEO: 502,
  GW_ERR_CODEC_UNSUPPORTED: 502,
  GW_ERR_UNAVAILABLE: 503,
  GW_ERR_CAPACITY: 503,
  GW_ERR_IMPORT_BUSY: 503,
  GW_ERR_STREAM_CLOSED: 503,
  GW_ERR_STREAM_TIMEOUT: 504,
} as const;

export type ErrorCode = keyof typeof errorCodes;

/**
 * What a client needs to word an error in its own language: `reason` picks the sentence, the rest
 * fill it in. Ids, names, numbers and config keys only: never a camera URL, credential or host.
 */
export type ErrorParams = Record<string, string | number>;
/** ErrorParams as a schema, for the documents that describe an error: its reason and the values that fill in its sentence. */
export const ERROR_PARAMS = Type.Record(Type.String(), Type.Union([Type.String(), Type.Number()]));

/**
 * The reasons each code may give and the parameters each reason carries, the contract between the
 * gateway and the player's translations (docs/errors.md lists them; tests hold all three together).
 * `detail` is never listed: any error may carry one, a text from outside the gateway (ffmpeg's
 * words) that is shown as it is.
 */
export const errorReasons = {
  GW_ERR_FORBIDDEN: { permission: ['permission'], scopeTop: [], address: [], notVehicleChannel: ['vehicle', 'channel'] },
  GW_ERR_CONFLICT: {
    taken: ['id'],
    disabled: ['camera'],
    notPush: ['camera'],
    ingestOff: [],
    departmentInUse: ['department'],
    planActive: ['plan', 'priority'],
    noPlan: [],
    planInUse: [],
    nameTaken: ['name'],
    popupEnded: ['popup'],
    alarmClosed: ['alarm', 'by'],
    alarmClosing: ['alarm'],
    alarmAcknowledged: ['alarm', 'by'],
    vehicleChannel: ['camera'],
    plateTaken: ['plate'],
    simTaken: ['sim'],
  },
  GW_ERR_LOCKED: { tile: ['tile', 'user'], popup: ['tile', 'popup'], ptz: ['camera', 'user'] },
  GW_ERR_UNSUPPORTED: { ptz: ['camera'] },
  GW_ERR_PAYLOAD_TOO_LARGE: {
    body: ['limit'],
    importBytes: ['limit'],
    importRows: ['limit'],
    csvRowChars: ['line', 'limit'],
    csvRowCells: ['line', 'limit'],
    message: ['limit'],
  },
  GW_ERR_IMPORT_REJECTED: { rows: ['rejected', 'rows'] },
  GW_ERR_RATE_LIMITED: { messages: ['perSecond'] },
  GW_ERR_LOGIN_LOCKED: { wait: ['retryAfterSec'] },
  GW_ERR_USER_QUOTA: { viewings: ['limit'] },
  GW_ERR_CAPACITY: {
    sessions: ['limit'],
    viewers: ['limit'],
    departmentPulls: ['department', 'limit'],
    transcode: ['limit'],
    webrtcPeers: ['limit'],
    subscriptions: ['limit'],
    snapshotDecodes: ['limit'],
    alarmPictures: ['limit'],
  },
  GW_ERR_IMPORT_BUSY: { imports: ['limit'] },
  GW_ERR_CAMERA_UNREACHABLE: {
    unreachable: [],
    noStream: [],
    stalled: ['ms'],
    closed: [],
    endedEarly: [],
    exited: [],
    noPublisher: [],
    lookup: [],
    deviceOffline: ['device'],
    deviceTimeout: ['device', 'ms'],
    inviteTimeout: ['ms'],
    inviteRefused: ['status', 'phrase'],
    noRtp: ['port', 'ms', 'address'],
    wrongSsrc: ['ssrc', 'expected'],
    noVideo: [],
    deviceBye: [],
    mediaEnded: [],
    vehicleOffline: ['vehicle', 'since'],
    vehicleNeverOnline: ['vehicle'],
    terminalTimeout: ['ms'],
    terminalRefused: ['result'],
    noMediaLink: ['ms'],
    linkNoVideo: [],
    mediaLinkClosed: [],
  },
  GW_ERR_CODEC_UNSUPPORTED: { decoder: [], h265Busy: ['limit'] },
  GW_ERR_UNAVAILABLE: { gb28181Off: [], jt1078Off: [], database: ['address'] },
  GW_ERR_STREAM_TIMEOUT: { start: ['ms'], hls: [] },
  GW_ERR_INTERNAL: { request: ['requestId'] },
} as const satisfies Partial<Record<ErrorCode, Record<string, readonly string[]>>>;

type Reasons = typeof errorReasons;
type ReasonCode = keyof Reasons;
type ParamsOf<C extends ReasonCode, R extends keyof Reasons[C]> = Reasons[C][R] extends readonly (infer K extends string)[]
  ? { [P in K]: string | number }
  : never;

/**
 * The rules a refused field may name (`issues[].rule`) and their parameters: JSON-schema keywords where
 * one fits, our own checks otherwise. An issue without a rule is worded by its message alone.
 */
export const issueRules = {
  required: [],
  type: ['type'],
  minLength: ['limit'],
  maxLength: ['limit'],
  minimum: ['limit'],
  maximum: ['limit'],
  range: ['min', 'max'],
  lengthRange: ['min', 'max'],
  minItems: ['limit'],
  maxItems: ['limit'],
  enum: ['allowed'],
  pattern: [],
  format: ['format'],
  unknownField: [],
  controlChars: [],
  url: [],
  urlScheme: ['allowed'],
  latLon: [],
  unchangeable: [],
  wrongPassword: [],
  unknownDepartment: ['department'],
  duplicate: ['line'],
  taken: [],
} as const satisfies Record<string, readonly string[]>;

export type IssueRule = keyof typeof issueRules;

export interface FieldIssue {
  field: string;
  message: string;
  rule?: IssueRule;
  params?: ErrorParams;
}

export class GatewayError extends Error {
  readonly statusCode: number;
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details?: Record<string, unknown>,
    readonly params?: ErrorParams,
  ) {
    super(message);
    this.name = 'GatewayError';
    this.statusCode = errorCodes[code];
  }
}

/**
 * An error whose reason and parameters the client words for itself; the English `message` stays for
 * API users and logs. The parameters are checked against `errorReasons` when this compiles.
 */
export function reasoned<C extends ReasonCode, R extends keyof Reasons[C] & string>(
  code: C,
  reason: R,
  params: ParamsOf<C, R> & { detail?: string },
  message: string,
  details?: Record<string, unknown>,
): GatewayError {
  return new GatewayError(code, message, details, { reason, ...(params as ErrorParams) });
}

/** The JSON body of an error, as REST and the control WebSocket send it. */
export function errorBody(err: GatewayError): { code: ErrorCode; message: string; params?: ErrorParams } & Record<string, unknown> {
  return { code: err.code, message: err.message, ...(err.params ? { params: err.params } : {}), ...(err.details ?? {}) };
}

/** An issue whose rule and parameters the client words for itself. */
export function issue<R extends IssueRule>(
  field: string,
  rule: R,
  params: (typeof issueRules)[R] extends readonly (infer K extends string)[] ? { [P in K]: string | number } : never,
  message: string,
): FieldIssue {
  return Object.keys(params).length ? { field, message, rule, params: params as ErrorParams } : { field, message, rule };
}

export class ValidationError extends GatewayError {
  constructor(readonly issues: FieldIssue[]) {
    super('GW_ERR_VALIDATION', issues.map((i) => `${i.field}: ${i.message}`).join('; '), { issues });
  }
}

/** Thrown by config loading; main prints it and exits non-zero instead of starting. */
export class ConfigError extends Error {
  constructor(readonly issues: FieldIssue[]) {
    super(`invalid configuration:\n${issues.map((i) => `  - ${i.field}: ${i.message}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

export const notFound = (what: string) => new GatewayError('GW_ERR_NOT_FOUND', `${what} not found`);
export const forbidden = (message = 'not allowed') => new GatewayError('GW_ERR_FORBIDDEN', message);
