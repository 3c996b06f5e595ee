import type { CompiledQuery, Kysely } from 'kysely';
import type { Logger } from '../core/logger.ts';
import { silentLogger } from '../core/logger.ts';
import type { Store } from '../core/store.ts';
import { createReads } from './reads.ts';
import type { Database } from './schema.ts';
import { compileBatch, createStatements, placeholderOf } from './sql.ts';
import { agents, toRow } from './tables.ts';
import { createWriteChain } from './write-batch.ts';

/**
 * The store over Kysely (SQLite or PostgreSQL; it never knows which driver is behind it). It composes
 * the shared write path (write-batch.ts), the SQL a batch becomes (sql.ts) and the reads (reads.ts).
 */
export interface Repository extends Store {
  readonly db: Kysely<Database>;
}

export function createRepository(db: Kysely<Database>, logger: Logger = silentLogger): Repository {
  const statements = createStatements(placeholderOf(db));
  const execute = (queries: CompiledQuery[]) =>
    db.transaction().execute(async (trx) => {
      for (const query of queries) await trx.executeQuery(query);
    });
  const chain = createWriteChain((ops) => execute(compileBatch(db, statements, ops)), logger);

  return {
    db,
    write: chain.write,
    flush: chain.flush,
    ...chain.seeingWrites(createReads(db)),

    // The agents rows are written on the same ordered chain as the batches: an insert or a delete lands
    // after every write buffered before it and before every later one.
    insertAgent(agent) {
      const row = toRow(agents, agent) as Database['agents']; // as it is now, not as the caller may change it before its turn
      return chain.serial(async () => {
        const result = await db.insertInto('agents').values(row).onConflict((oc) => oc.column('id').doNothing()).executeTakeFirst();
        return Number(result.numInsertedOrUpdatedRows ?? 0n) === 1;
      });
    },
    // Its events are left to expire with the retention window (`events.trim`), like every other event.
    deleteAgent: (id) =>
      chain.serial(() =>
        db.transaction().execute(async (trx) => {
          await trx.deleteFrom('schedules').where('agent_id', '=', id).execute();
          await trx.deleteFrom('runs').where('agent_id', '=', id).execute();
          await trx.deleteFrom('agents').where('id', '=', id).execute();
        }),
      ),
    async [Symbol.asyncDispose]() {
      await chain.settle();
      await db.destroy();
    },
  };
}
