import pg from 'pg';
import { PostgresDialect, type Dialect } from 'kysely';

// int8 (bigint) columns hold millisecond times and event ids, all well inside 2^53: read them as numbers.
pg.types.setTypeParser(20, (v: string) => Number(v));

/** PostgreSQL through node-postgres, for several instances on one database. */
export function postgresDialect(url: string): Dialect {
  return new PostgresDialect({ pool: new pg.Pool({ connectionString: url, max: 10 }) });
}
