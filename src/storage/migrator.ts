import { Migrator, sql, type Kysely, type MigrationProvider } from 'kysely';
import { migrations } from './migrations.ts';
import { withSchemaIntrospection } from './schema-introspector.ts';
import { isSharedDatabase } from './sql.ts';

/** The tables are in migrations.ts; here, how they are applied: once, whichever instance starts first. */
const provider: MigrationProvider = { getMigrations: async () => migrations };

/**
 * The key of the advisory lock migrations take on PostgreSQL: any fixed number, the same in every
 * instance (it spells "agntschd" in ASCII), and different from the one Kysely's Migrator takes inside.
 */
export const MIGRATION_LOCK_KEY = 0x61676e7473636864n;
const lockKey = sql.lit(MIGRATION_LOCK_KEY);

/**
 * Brings the schema up to date; a second call is a no-op. Throws if a migration fails.
 * `schema` names the PostgreSQL schema for Kysely's bookkeeping tables when several schemas share a
 * database (tests give each their own); otherwise Kysely's default is used.
 *
 * On PostgreSQL, several instances may start at once: each holds a session advisory lock for the whole
 * run, on one dedicated connection, so the first migrates and the others wait, then find nothing to do.
 * Kysely's Migrator locks only around applying the migrations; it creates its bookkeeping tables before
 * that, and concurrent CREATE TABLE IF NOT EXISTS can still collide on PostgreSQL's catalog. The lock is a
 * session one (not a transaction's) because the Migrator opens its own transaction on the connection;
 * it is released at the end, or by the server when the connection dies with its process.
 */
export async function migrate(db: Kysely<any>, options: { schema?: string } = {}): Promise<{ applied: string[] }> {
  if (!isSharedDatabase(db)) return migrateOn(db, options.schema);
  return db.connection().execute(async (conn) => {
    await sql`SELECT pg_advisory_lock(${lockKey})`.execute(conn);
    try {
      // Kysely's Migrator, given no schema, takes a bookkeeping table found in ANY schema of the database
      // for its own; named, it looks in that one only. The schema it would create them in unnamed is the
      // connection's current one, so naming that keeps existing databases as they are.
      const schema = options.schema ?? (await sql<{ name: string }>`SELECT current_schema() AS name`.execute(conn)).rows[0]?.name;
      // Asking about that schema only (schema-introspector.ts): others' DDL elsewhere in the database cannot fail it.
      return await migrateOn(schema === undefined ? conn : withSchemaIntrospection(conn, schema), schema);
    } finally {
      await sql`SELECT pg_advisory_unlock(${lockKey})`.execute(conn);
    }
  });
}

/**
 * Kysely's Migrator looks for its bookkeeping table by listing the tables of every schema, calling
 * has_schema_privilege(name) on each: a schema dropped by someone else during that listing (a test
 * suite dropping its own, on one shared server) fails the call. Nothing was applied then; it is tried
 * again, a few times.
 */
const LISTING_RETRIES = 5;
const droppedMeanwhile = (err: unknown, schema: string | undefined) => {
  const name = /^schema "([^"]+)" does not exist$/.exec(err instanceof Error ? err.message : '')?.[1];
  // The listing also reads the columns of every table: one another suite creates or drops meanwhile can
  // fail it with "column … does not exist". Either way it failed inside the introspector, before anything ran.
  const inListing = err instanceof Error && /PostgresIntrospector/.test(err.stack ?? '');
  return (name !== undefined && name !== schema) || inListing;
};

async function migrateOn(db: Kysely<any>, schema: string | undefined): Promise<{ applied: string[] }> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await migrateOnce(db, schema);
    } catch (err) {
      if (attempt >= LISTING_RETRIES || !droppedMeanwhile(err, schema)) throw err;
    }
  }
}

async function migrateOnce(db: Kysely<any>, schema: string | undefined): Promise<{ applied: string[] }> {
  const migrator = new Migrator({ db, provider, ...(schema !== undefined && { migrationTableSchema: schema }) });
  const { error, results } = await migrator.migrateToLatest();
  if (error) throw error instanceof Error ? error : new Error(String(error));
  return { applied: (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName) };
}
