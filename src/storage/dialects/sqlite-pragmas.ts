/**
 * Pragmas every SQLite connection gets: WAL lets readers run beside the writer, synchronous=NORMAL
 * is durable across a process crash in WAL mode (only an OS crash can lose the last commits), and the
 * busy timeout waits out another connection's write lock instead of failing at once.
 */
export const SQLITE_PRAGMAS = ['journal_mode = WAL', 'synchronous = NORMAL', 'busy_timeout = 5000'];

/** `file:PATH` → PATH; `:memory:` stays as it is. */
export function sqlitePath(url: string): string {
  return url === ':memory:' ? url : url.replace(/^file:(\/\/)?/, '');
}
