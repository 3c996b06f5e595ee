import pg from 'pg';
import { PostgresDialect, type Dialect } from 'kysely';

// int8 (bigint) columns hold millisecond times and event ids, all well inside 2^53: read them as numbers.
pg.types.setTypeParser(20, (v: string) => Number(v));

/**
 * PostgreSQL through node-postgres, for several instances on one database. A connection the server
 * ends (a restart, pg_terminate_backend, a network cut) emits 'error' on the idle client and the pool;
 * unheard, that event would crash the process. The pool drops such a client by itself and the query
 * that needed it fails (and is retried by its caller), so here the error is only reported.
 */
export function postgresDialect(url: string, onConnectionError: (err: Error) => void = () => {}): Dialect {
  const pool = new pg.Pool({ connectionString: url, max: 10 });
  pool.on('error', onConnectionError);
  pool.on('connect', (client) => client.on('error', onConnectionError));
  return new PostgresDialect({ pool });
}
