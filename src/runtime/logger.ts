import type { Logger } from '../core/logger.ts';

/** JSON lines on stdout/stderr. Callers never pass secrets or tokens in fields. */
export function createConsoleLogger(write: (line: string, isError: boolean) => void): Logger {
  const log = (level: string, message: string, fields?: Record<string, unknown>) =>
    write(JSON.stringify({ time: new Date().toISOString(), level, message, ...fields }), level === 'error');
  return {
    info: (m, f) => log('info', m, f),
    warn: (m, f) => log('warn', m, f),
    error: (m, f) => log('error', m, f),
  };
}
