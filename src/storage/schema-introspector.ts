import { sql, type DatabaseIntrospector, type Kysely, type SchemaMetadata, type TableMetadata } from 'kysely';

/**
 * What Kysely's Migrator asks of `db.introspection` (does the bookkeeping schema exist, does its table),
 * answered for one PostgreSQL schema only. Kysely's own introspector lists the columns of every table of
 * every schema and calls has_schema_privilege on each: on a server where others create and drop schemas
 * (other applications, or a test suite giving each test its own), a schema dropped during that listing
 * fails the call, and the listing grows with every schema. This one reads pg_catalog by name, calls no
 * function per row, and so cannot trip over anyone else's DDL.
 */
function scopedIntrospector(db: Kysely<any>, schema: string): DatabaseIntrospector {
  return {
    async getSchemas(): Promise<SchemaMetadata[]> {
      const { rows } = await sql<{ name: string }>`SELECT nspname AS name FROM pg_catalog.pg_namespace WHERE nspname = ${schema}`.execute(db);
      return rows.map((r) => ({ name: r.name }));
    },
    async getTables(): Promise<TableMetadata[]> {
      const { rows } = await sql<{ name: string }>`SELECT c.relname AS name FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = ${schema} AND c.relkind IN ('r', 'p', 'v')`.execute(db);
      // The Migrator reads only the names; it never looks at columns.
      return rows.map((r) => ({ name: r.name, schema, isView: false, columns: [] }));
    },
    async getMetadata() {
      return { tables: await this.getTables() };
    },
  };
}

/**
 * `db` with its `introspection` scoped to `schema` (above); everything else is `db`'s own, bound to it
 * (Kysely keeps its state in private fields, which a plain prototype copy could not reach).
 */
export function withSchemaIntrospection(db: Kysely<any>, schema: string): Kysely<any> {
  const introspection = scopedIntrospector(db, schema);
  return new Proxy(db, {
    get(target, key) {
      if (key === 'introspection') return introspection;
      const value = Reflect.get(target, key, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}
