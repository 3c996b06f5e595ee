import type { Kysely } from 'kysely';
import type { Store } from '../core/store.ts';
import type { Database } from './schema.ts';
import { fromRow, instances, toRow } from './tables.ts';

export type InstanceMethods = Pick<Store, 'upsertInstance' | 'heartbeatInstance' | 'stopInstance' | 'listInstances'>;

/**
 * The instances table (core/instances.ts keeps it). These statements go straight to the database,
 * beside the write chain: an instance row is its own, no batch ever touches it, and a heartbeat must
 * not wait behind a large batch of scheduler writes.
 */
export function createInstanceMethods(db: Kysely<Database>): InstanceMethods {
  return {
    async upsertInstance(instance) {
      const row = toRow(instances, instance) as Database['instances'];
      const { id: _id, ...rest } = row;
      await db.insertInto('instances').values(row).onConflict((oc) => oc.column('id').doUpdateSet(rest)).execute();
    },
    async heartbeatInstance(id, at, running) {
      await db.updateTable('instances').set({ heartbeat_at: at, running }).where('id', '=', id).execute();
    },
    async stopInstance(id, at) {
      await db.updateTable('instances').set({ stopped_at: at, running: 0 }).where('id', '=', id).execute();
    },
    async listInstances(aliveSince) {
      const rows = await db
        .selectFrom('instances')
        .selectAll()
        .where('stopped_at', 'is', null)
        .where('heartbeat_at', '>=', aliveSince)
        .orderBy('started_at')
        .orderBy('id')
        .execute();
      return rows.map((r) => fromRow(instances, r));
    },
  };
}
