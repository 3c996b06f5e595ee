import type { z } from 'zod';
import { badRequest } from '../core/errors.ts';

/** Parses with a shared schema; a failure is a 400 naming the field, what was expected and what came. */
export function parseInput<S extends z.ZodType>(schema: S, value: unknown, where?: string): z.output<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  throw badRequest(describeZodError(result.error, value, where));
}

/** `field.path: what was expected, got <value>` for the first issue of a zod error. */
export function describeZodError(error: z.ZodError, value: unknown, where?: string): string {
  const issue = error.issues[0]!;
  const path = [where, ...issue.path.map(String)].filter(Boolean).join('.');
  let message = issue.message;
  if (issue.code === 'unrecognized_keys') message = `unknown field${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `"${k}"`).join(', ')}`;
  else if (issue.code === 'invalid_type' && /received undefined/.test(issue.message)) message = `is required (${issue.message.replace(/^Invalid input: /, '')})`;
  const got = issue.path.length > 0 ? describe(pick(value, issue.path)) : describe(value);
  return `${path || 'input'}: ${message}${issue.code === 'unrecognized_keys' ? '' : `, got ${got}`}`;
}

function pick(value: unknown, path: PropertyKey[]): unknown {
  let v = value;
  for (const k of path) v = v && typeof v === 'object' ? (v as Record<PropertyKey, unknown>)[k] : undefined;
  return v;
}

function describe(v: unknown): string {
  if (v === undefined) return 'nothing';
  try {
    const s = JSON.stringify(v);
    return s.length > 80 ? `${s.slice(0, 77)}...` : s;
  } catch {
    return typeof v;
  }
}
