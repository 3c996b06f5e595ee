import { pino } from 'pino';
import { prettyFactory } from 'pino-pretty';
import type { Logger } from '../core/logger.ts';

/**
 * The server's logger (README "Logs"): pino, one JSON object per line (`time`, `level` as a word, `message`, then
 * the fields), or readable lines through pino-pretty. Both are written synchronously through `write`, in this
 * process: no worker thread (pino's transports) that Deno or a `kill -9` would treat differently.
 */
export interface LoggerOptions {
  /** @default 'json' */
  format?: 'json' | 'pretty';
  /** @default 'info' */
  level?: 'debug' | 'info' | 'warn' | 'error';
  /** Where each finished line goes (stdout in the runtime entries, an array in tests). */
  write(line: string): void;
  /** Colours in pretty lines (a terminal that shows them). @default false */
  colorize?: boolean;
}

/**
 * Keys whose values are never written, at the top of a line's fields and one or two levels down: tokens, keys,
 * secrets, passwords and every header map (a webhook's headers hold its credentials). Callers never pass such
 * values; this is the second guard, tested by test/logs.test.ts.
 */
const SECRET_KEYS = ['token', 'authorization', 'apiKey', 'api_key', 'secret', 'password', 'cookie', 'headers', 'jwt', 'key'];
export const REDACTED_PATHS = SECRET_KEYS.flatMap((k) => [k, `*.${k}`, `*.*.${k}`]);
export const CENSOR = '[redacted]';

export function createLogger({ format = 'json', level = 'info', write, colorize = false }: LoggerOptions): Logger {
  const pretty = format === 'pretty' ? prettyFactory({ colorize, translateTime: 'SYS:HH:MM:ss.l', ignore: 'hostname', messageKey: 'message' }) : undefined;
  const out = pino(
    {
      level,
      base: undefined,
      messageKey: 'message',
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      redact: { paths: REDACTED_PATHS, censor: CENSOR },
    },
    { write: (line: string) => write(pretty ? pretty(line).replace(/\n$/, '') : line.replace(/\n$/, '')) },
  );
  return {
    debug: (m, f) => out.debug(f ?? {}, m),
    info: (m, f) => out.info(f ?? {}, m),
    warn: (m, f) => out.warn(f ?? {}, m),
    error: (m, f) => out.error(f ?? {}, m),
  };
}
