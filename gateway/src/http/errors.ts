import type { FastifyError, FastifyInstance } from 'fastify';
import { GatewayError, errorBody, errorCodes, reasoned, type ErrorCode, type FieldIssue } from '../errors.js';

interface ErrorBody {
  code: ErrorCode;
  message: string;
  [key: string]: unknown;
}

/** An ajv (JSON-schema) failure as the rule the player words, with the schema's numbers. */
function ruleOf(keyword: string, params: Record<string, unknown>): Pick<FieldIssue, 'rule' | 'params'> {
  const limit = typeof params.limit === 'number' ? { limit: params.limit } : null;
  switch (keyword) {
    case 'required':
      return { rule: 'required' };
    case 'additionalProperties':
      return { rule: 'unknownField' };
    case 'type':
      return { rule: 'type', params: { type: String(params.type) } };
    case 'enum':
      return { rule: 'enum', params: { allowed: (params.allowedValues as unknown[] | undefined)?.join(', ') ?? '' } };
    case 'const':
      return { rule: 'enum', params: { allowed: String(params.allowedValue) } };
    case 'pattern':
      return { rule: 'pattern' };
    case 'format':
      return { rule: 'format', params: { format: String(params.format) } };
    case 'minLength':
    case 'maxLength':
    case 'minimum':
    case 'maximum':
    case 'minItems':
    case 'maxItems':
      return limit ? { rule: keyword, params: limit } : {};
    default:
      return {};
  }
}

/** Fastify's own errors, by their code, mapped onto ours. */
const FASTIFY_CODES: Record<string, ErrorCode> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'GW_ERR_PAYLOAD_TOO_LARGE',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'GW_ERR_UNSUPPORTED_MEDIA_TYPE',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'GW_ERR_VALIDATION',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'GW_ERR_VALIDATION',
};

/**
 * One error handler: coded errors keep their code and message; schema failures name the field;
 * anything unexpected becomes a 500 whose details stay in the log, keyed by the request id.
 */
export function installErrorHandler(app: FastifyInstance) {
  app.setErrorHandler((err: FastifyError | GatewayError, req, reply) => {
    let status: number;
    let body: ErrorBody;
    if (err instanceof GatewayError) {
      status = err.statusCode;
      body = errorBody(err) as ErrorBody;
    } else if ((err as FastifyError).validation) {
      const issues = (err as FastifyError).validation!.map((v) => {
        const base = v.instancePath.replace(/^\//, '').replace(/\//g, '.');
        const missing = (v.params as { missingProperty?: string }).missingProperty;
        const extra = (v.params as { additionalProperty?: string }).additionalProperty;
        const field = [(err as FastifyError).validationContext === 'body' ? '' : (err as FastifyError).validationContext, base, missing ?? extra]
          .filter(Boolean)
          .join('.');
        return { field: field || '(body)', message: extra ? 'unknown field' : (v.message ?? 'invalid'), ...ruleOf(v.keyword, v.params as Record<string, unknown>) };
      });
      status = 400;
      body = { code: 'GW_ERR_VALIDATION', message: issues.map((i) => `${i.field}: ${i.message}`).join('; '), issues };
    } else if (err.code && FASTIFY_CODES[err.code]) {
      const code = FASTIFY_CODES[err.code]!;
      status = errorCodes[code];
      body = { code, message: err.message };
      if (code === 'GW_ERR_PAYLOAD_TOO_LARGE') body.params = { reason: 'body', limit: req.routeOptions.bodyLimit ?? app.initialConfig.bodyLimit ?? 0 };
    } else if (err instanceof SyntaxError || err.code === 'FST_ERR_CTP_INVALID_JSON_BODY') {
      status = 400;
      body = { code: 'GW_ERR_VALIDATION', message: '(body): not valid JSON' };
    } else if (typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 500) {
      status = err.statusCode;
      body = { code: status === 404 ? 'GW_ERR_NOT_FOUND' : 'GW_ERR_VALIDATION', message: err.message };
    } else {
      req.log.error({ err }, 'unhandled error');
      status = 500;
      body = errorBody(reasoned('GW_ERR_INTERNAL', 'request', { requestId: req.id }, `internal error; quote request id ${req.id} to the operators`)) as ErrorBody;
    }
    if (status >= 500 && err instanceof GatewayError) req.log.error({ code: err.code }, err.message);
    reply.status(status).send(body);
  });
  app.setNotFoundHandler((req, reply) => {
    reply.status(404).send({ code: 'GW_ERR_NOT_FOUND', message: `no route ${req.method} ${req.url.split('?')[0]}` });
  });
}
