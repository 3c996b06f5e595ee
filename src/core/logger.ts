/**
 * The slice of a logger the core needs; runtime/logger.ts gives it a pino one. Never pass secrets in `fields`
 * (the runtime's logger also redacts the usual secret-bearing keys, as a second guard).
 */
export interface Logger {
  /** Per-request detail: only when LOG_LEVEL=debug. Optional, so a logger written for tests may leave it out. */
  debug?(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };
