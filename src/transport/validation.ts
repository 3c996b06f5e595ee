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
  const issue = innermost(error.issues[0]!);
  const path = [where, ...issue.path.map(String)].filter(Boolean).join('.');
  let message = issue.message;
  if (issue.code === 'unrecognized_keys') message = `unknown field${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `"${k}"`).join(', ')}`;
  else if (issue.code === 'invalid_type' && /received undefined/.test(issue.message)) message = `is required (${issue.message.replace(/^Invalid input: /, '')})`;
  const got = issue.path.length > 0 ? describe(pick(value, issue.path)) : describe(value);
  return `${path || 'input'}: ${message}${issue.code === 'unrecognized_keys' ? '' : `, got ${got}`}`;
}

/**
 * A union's failure, when the value had the shape of exactly one of its options, is that option's own first
 * issue (`catchUp.window: …` rather than `catchUp: expected true, false or …`); otherwise the union's message.
 */
function innermost(issue: z.core.$ZodIssue): z.core.$ZodIssue {
  if (issue.code !== 'invalid_union' || !('errors' in issue)) return issue;
  const shaped = issue.errors.filter((branch) => branch[0] && !(branch[0].code === 'invalid_type' && branch[0].path.length === 0));
  if (shaped.length !== 1) return issue;
  const inner = shaped[0]![0]!;
  return innermost({ ...inner, path: [...issue.path, ...inner.path] } as z.core.$ZodIssue);
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
