import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { TypeCompiler, ValueErrorType, type TypeCheck, type ValueError } from '@sinclair/typebox/compiler';
import { ValidationError, type FieldIssue } from '../errors.js';

/** TypeBox's kind of failure as the rule the player words, with the schema's own numbers. */
function ruleOf(e: ValueError): Pick<FieldIssue, 'rule' | 'params'> {
  const s = e.schema as Record<string, unknown>;
  // A bound the schema does not state as a number is left to the message.
  const limited = (rule: 'maxLength' | 'minLength' | 'maximum' | 'minimum' | 'maxItems' | 'minItems'): Pick<FieldIssue, 'rule' | 'params'> =>
    typeof s[rule] === 'number' ? { rule, params: { limit: s[rule] } } : {};
  switch (e.type) {
    case ValueErrorType.ObjectRequiredProperty:
      return { rule: 'required' };
    case ValueErrorType.ObjectAdditionalProperties:
      return { rule: 'unknownField' };
    case ValueErrorType.StringMaxLength:
      return limited('maxLength');
    case ValueErrorType.StringMinLength:
      return limited('minLength');
    case ValueErrorType.NumberMaximum:
    case ValueErrorType.IntegerMaximum:
      return limited('maximum');
    case ValueErrorType.NumberMinimum:
    case ValueErrorType.IntegerMinimum:
      return limited('minimum');
    case ValueErrorType.ArrayMaxItems:
      return limited('maxItems');
    case ValueErrorType.ArrayMinItems:
      return limited('minItems');
    case ValueErrorType.StringPattern:
      return { rule: 'pattern' };
    case ValueErrorType.StringFormat:
      return { rule: 'format', params: { format: String(s.format) } };
    case ValueErrorType.Literal:
      return { rule: 'enum', params: { allowed: String(s.const) } };
    case ValueErrorType.Union: {
      const literals = ((s.anyOf as Record<string, unknown>[] | undefined) ?? []).map((b) => b.const);
      return literals.length && literals.every((v) => v !== undefined) ? { rule: 'enum', params: { allowed: literals.join(', ') } } : {};
    }
    case ValueErrorType.String:
    case ValueErrorType.Number:
    case ValueErrorType.Integer:
    case ValueErrorType.Boolean:
    case ValueErrorType.Array:
    case ValueErrorType.Object:
    case ValueErrorType.Null:
      return { rule: 'type', params: { type: String(s.type) } };
    default:
      return {};
  }
}

/** '/tileIds/2' → 'tileIds[2]', '/content/cameraId' → 'content.cameraId'. */
function fieldOf(path: string, prefix: string): string {
  const field = path
    .split('/')
    .filter(Boolean)
    .map((part, i) => (/^\d+$/.test(part) ? `[${part}]` : i === 0 ? part : `.${part}`))
    .join('');
  if (!prefix) return field || 'payload';
  return field ? (field.startsWith('[') ? prefix + field : `${prefix}.${field}`) : prefix;
}

/** A compiled schema whose `parse` returns the value typed, or throws a ValidationError naming each bad field. */
export function schemaCheck<T extends TSchema>(schema: T): { parse(value: unknown, prefix?: string): Static<T>; issues(value: unknown, prefix?: string): FieldIssue[] } {
  const check: TypeCheck<T> = TypeCompiler.Compile(schema);
  const issues = (value: unknown, prefix = '') => {
    const out: FieldIssue[] = [];
    if (check.Check(value)) return out;
    const seen = new Set<string>();
    for (const e of check.Errors(value)) {
      // A union reports each branch; the first error for a field is the useful one.
      const field = fieldOf(e.path, prefix);
      if (seen.has(field)) continue;
      seen.add(field);
      out.push({ field, message: e.message.toLowerCase(), ...ruleOf(e) });
      if (out.length >= 10) break;
    }
    return out;
  };
  return {
    issues,
    parse(value, prefix = '') {
      const found = issues(value, prefix);
      if (found.length) throw new ValidationError(found);
      return value as Static<T>;
    },
  };
}

/** A schema that also takes null. */
export const orNull = <T extends TSchema>(t: T) => Type.Union([t, Type.Null()]);
/** One of these strings, as a union of literals (an enum in the documents). */
export const literals = <T extends string>(values: readonly T[]) => Type.Union(values.map((v) => Type.Literal(v)));
/** A message the control WebSocket sends: its type and payload, nothing else. */
export const serverEnvelope = <T extends string, P extends TSchema>(type: T, payload: P, description: string) =>
  Type.Object({ type: Type.Literal(type), payload }, { additionalProperties: false, description });
