/**
 * One error vocabulary for the whole server. Every boundary maps these codes once
 * (`transport/errors.ts`); every `catch` coerces `unknown` into a DomainError first.
 */
export type ErrorCode =
  | 'BAD_REQUEST'
  | 'UNAUTHORIZED'
  | 'FORBIDDEN'
  | 'NOT_FOUND'
  | 'CONFLICT'
  | 'METHOD_NOT_ALLOWED'
  | 'PAYLOAD_TOO_LARGE'
  | 'TOO_MANY_REQUESTS'
  | 'INTERNAL';

export class DomainError extends Error {
  override name = 'DomainError';
  constructor(
    readonly code: ErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export const badRequest = (message: string) => new DomainError('BAD_REQUEST', message);
/** A verified caller who may not make this call (an admin-only one): distinct from a bad token (401). */
export const forbidden = (message: string) => new DomainError('FORBIDDEN', message);
export const notFound = (message: string) => new DomainError('NOT_FOUND', message);
export const conflict = (message: string) => new DomainError('CONFLICT', message);
/** A rate limit was reached (MANUAL_RUNS_PER_MINUTE): the message says when to try again. */
export const tooManyRequests = (message: string) => new DomainError('TOO_MANY_REQUESTS', message);

/**
 * Turns anything thrown into a DomainError. Unknown errors become INTERNAL with a generic
 * message: their text may hold SQL, paths or secrets and never reaches a client.
 */
export function toDomainError(err: unknown): DomainError {
  if (err instanceof DomainError) return err;
  return new DomainError('INTERNAL', 'Internal server error', { cause: err });
}

/** A short human text for any thrown value, for run errors and logs (never a stack). */
export function errorText(err: unknown): string {
  if (err instanceof Error) return err.message || err.name;
  if (typeof err === 'string') return err;
  try {
    return JSON.stringify(err) ?? String(err);
  } catch {
    return String(err);
  }
}
