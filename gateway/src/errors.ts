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

export interface FieldIssue {
  field: string;
  message: string;
}

export class GatewayError extends Error {
  readonly statusCode: number;
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
    this.name = 'GatewayError';
    this.statusCode = errorCodes[code];
  }
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
