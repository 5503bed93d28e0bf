import type { Static, TSchema } from '@sinclair/typebox';
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler';
import { ValidationError, type FieldIssue } from '../errors.js';

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
      out.push({ field, message: e.message.toLowerCase() });
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
