import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { Kysely, sql } from 'kysely';
import pg from 'pg';
import PgBoss from 'pg-boss';
import { postgresDialect } from '../src/storage/dialects/postgres.ts';
import { migrate } from '../src/storage/migrator.ts';
import type { Database } from '../src/storage/schema.ts';
import { quick, record, round } from './harness.ts';

/**
 * Dispatch on PostgreSQL: N no-op runs due at one instant, carried by 1, 2 and 3 instances (each its own
 * process, concurrency 5) on one database, timed from the instant until every run is `completed` in the
 * table; the handlers count what they ran per slot, so a slot run twice anywhere is seen (the ground
 * truth, not the runs table). Baseline: pg-boss on the same PostgreSQL, N jobs inserted at once, 5
 * workers each fetching up to PG_BOSS_BATCH jobs: a pg-boss worker waits its polling interval (0.5 s at
 * the least) after every fetch, so fetching in batches is how pg-boss is meant to go fast.
 */
const PG_BOSS_BATCH = 100;
const N = quick ? 200 : 10_000;
const CONCURRENCY = 5;
const INSTANCES = quick ? [1, 3] : [1, 2, 3];
const baseUrl = process.env['TEST_POSTGRES_URL'] ?? process.env['BENCH_POSTGRES_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';

async function freshSchema(): Promise<{ url: string; drop(): Promise<void> }> {
  const schema = `bench_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 6)}`;
  const admin = new pg.Client(baseUrl);
  await admin.connect();
  await admin.query(`CREATE SCHEMA ${schema}`);
  await admin.end();
  const url = new URL(baseUrl);
  url.searchParams.set('options', `-c search_path=${schema}`);
  return {
    url: url.toString(),
    async drop() {
      const c = new pg.Client(baseUrl);
      await c.connect();
      await c.query(`DROP SCHEMA ${schema} CASCADE`);
      await c.end();
    },
  };
}

function child(url: string, id: string): { proc: ChildProcess; ready: Promise<void>; counts: Promise<Record<string, number>> } {
  const proc = spawn(process.execPath, ['--import', 'tsx', 'bench/dispatch-pg-child.ts', url, id, String(CONCURRENCY)], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: proc.stdout! });
  let ready!: () => void;
  let counted!: (c: Record<string, number>) => void;
  const counts = new Promise<Record<string, number>>((r) => (counted = r));
  const readyP = new Promise<void>((r) => (ready = r));
  lines.on('line', (line) => (line === 'ready' ? ready() : counted(JSON.parse(line) as Record<string, number>)));
  return { proc, ready: readyP, counts };
}

/** Resolves when the process has exited; one that takes more than 10 s to stop is killed. */
function exited(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000);
    proc.once('exit', () => (clearTimeout(timer), resolve()));
  });
}

async function ours(instances: number): Promise<{ perSecond: number; duplicates: number }> {
  const schema = await freshSchema();
  const db = new Kysely<Database>({ dialect: postgresDialect(schema.url) });
  let children: ReturnType<typeof child>[] = [];
  try {
    await migrate(db);
    // Every schedule comes due at this instant, once all instances have loaded. The quick run (in `npm test`, often
    // beside other work on two cores) allows far more: instance processes starting under tsx took over 8 s there.
    const at = Date.now() + (quick ? 30_000 : 4000 + instances * 1500);
    for (let i = 0; i < N; i += 1000) {
      const ids = Array.from({ length: Math.min(1000, N - i) }, (_, j) => `a${i + j}`);
      await db.insertInto('agents').values(ids.map((id) => ({ id, owner: 'bench', name: id, handler: 'noop', config: '{}', description: null, timeout_ms: null, max_retries: null, status: 'IDLE', last_run_at: null, last_error: null, retry_count: 0, backoff_until: null, created_at: at, updated_at: at }))).execute();
      await db.insertInto('schedules').values(ids.map((id, j) => ({ agent_id: id, job_id: id, expression: '0 0 1 1 *', timezone: 'UTC', priority: 1 + ((i + j) % 4), enabled: 1, paused: 0, catch_up: 1, next_run_at: at, created_at: at, updated_at: at }) as never)).execute();
    }
    children = Array.from({ length: instances }, (_, k) => child(schema.url, `bench-${k}`));
    await Promise.all(children.map((c) => c.ready));
    if (Date.now() > at) throw new Error('instances took longer to start than the benchmark allows');
    let completed = 0;
    while (completed < N) {
      await new Promise((r) => setTimeout(r, 20));
      const row = await sql<{ n: string }>`SELECT count(*) AS n FROM runs WHERE status = 'completed'`.execute(db);
      completed = Number(row.rows[0]!.n);
      if (Date.now() - at > 300_000) throw new Error(`only ${completed} of ${N} runs completed in 5 minutes`);
    }
    const seconds = (Date.now() - at) / 1000;
    for (const c of children) c.proc.stdin!.write('stop\n');
    const all = await Promise.all(children.map((c) => c.counts));
    // Dropping the schema while an instance still writes its last rows deadlocks with it: wait for every exit.
    await Promise.all(children.map((c) => exited(c.proc)));
    const bySlot = new Map<string, number>();
    for (const counts of all) for (const [slot, n] of Object.entries(counts)) bySlot.set(slot, (bySlot.get(slot) ?? 0) + n);
    let duplicates = 0;
    for (const n of bySlot.values()) if (n > 1) duplicates += n - 1;
    return { perSecond: N / seconds, duplicates };
  } finally {
    for (const c of children) if (c.proc.exitCode === null && c.proc.signalCode === null) c.proc.kill('SIGKILL');
    await Promise.all(children.map((c) => exited(c.proc)));
    await db.destroy();
    await schema.drop();
  }
}

async function pgBoss(): Promise<number> {
  const schema = await freshSchema();
  const boss = new PgBoss({ connectionString: baseUrl, schema: `boss_${Date.now().toString(36)}` });
  boss.on('error', () => {});
  try {
    await boss.start();
    const name = 'bench';
    await boss.createQueue(name);
    let completed = 0;
    let allDone!: () => void;
    const done = new Promise<void>((r) => (allDone = r));
    const start = performance.now();
    for (let i = 0; i < N; i += 1000) await boss.insert(Array.from({ length: Math.min(1000, N - i) }, (_, j) => ({ name, data: { i: i + j }, priority: 1 + ((i + j) % 4) })));
    for (let w = 0; w < CONCURRENCY; w++) {
      await boss.work(name, { batchSize: PG_BOSS_BATCH, pollingIntervalSeconds: 0.5 }, async (jobs) => void ((completed += jobs.length) >= N && allDone()));
    }
    await done;
    return N / ((performance.now() - start) / 1000);
  } finally {
    await boss.stop({ graceful: false, wait: true }).catch(() => {});
    await schema.drop();
  }
}

/** Is PostgreSQL there? CI must have it (and fails loudly without it); elsewhere this benchmark is skipped, saying so. */
async function postgresReachable(): Promise<boolean> {
  const c = new pg.Client(baseUrl);
  try {
    await c.connect();
    await c.end();
    return true;
  } catch {
    return false;
  }
}

export async function benchDispatchPg(): Promise<void> {
  if (!(await postgresReachable())) {
    if (process.env['CI']) throw new Error(`CI needs PostgreSQL at ${baseUrl} for the PostgreSQL dispatch benchmark`);
    console.warn(`bench: PostgreSQL dispatch skipped: no PostgreSQL at ${baseUrl}`);
    return;
  }
  const boss = await pgBoss();
  const one = INSTANCES.includes(1) ? await ours(1) : null;
  for (const k of INSTANCES) {
    const r = k === 1 && one ? one : await ours(k);
    record({ name: `dispatch on PostgreSQL: ${N} runs, ${k} instance${k > 1 ? 's' : ''}`, value: round(r.perSecond), unit: 'runs/s', baseline: `pg-boss, 5 workers × batch ${PG_BOSS_BATCH}, same PostgreSQL`, baselineValue: round(boss), target: k === 1 ? '≥ 2× pg-boss' : '3 instances ≥ 2× one', met: k === 1 ? r.perSecond >= 2 * boss : k === 3 && one ? r.perSecond >= 2 * one.perSecond : null });
    record({ name: `duplicate slots, ${k} instance${k > 1 ? 's' : ''} on PostgreSQL`, value: r.duplicates, unit: 'runs', baseline: null, baselineValue: null, target: '0', met: r.duplicates === 0 });
  }
}
