import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createInterface } from 'node:readline';
import { Kysely } from 'kysely';
import pg from 'pg';
import { createAuth } from '../../src/services/auth.ts';
import { postgresDialect } from '../../src/storage/dialects/postgres.ts';
import { migrate } from '../../src/storage/migrator.ts';
import { pgSchema, TEST_POSTGRES_URL, TEST_SECRET } from '../harness.ts';

/**
 * Several real server processes (`npm start`'s entry) on one fresh PostgreSQL schema, and a loopback
 * receiver that webhook agents call (docs/cluster.md, "Tests to come with it"). The receiver is the
 * ground truth of work done: a slot that ran twice shows up as two calls, whatever the runs table says.
 *
 * Time here is real: the processes run their own clocks, so the tests wait on observable things (a
 * call reaching the receiver, a run's status over the API, a heartbeat) with deadlines, never on sleeps.
 */

// ---------- waiting ----------

/** Polls `probe` until it answers something other than undefined; fails with `what` and the last value seen. */
export async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 15_000, everyMs = 100): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) {
      last = err instanceof Error ? err.message : err;
    }
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last === undefined ? '' : `; last: ${JSON.stringify(last)}`}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

// ---------- the receiver ----------

/** What the webhook handler POSTs (README, "Concepts": the `webhook` handler). */
export interface HookBody {
  agentId: string;
  jobId: string;
  runId: string;
  attempt: number;
  scheduledAt: string;
}

export interface HookCall {
  body: HookBody;
  receivedAt: number;
  /** Answers the call (200 unless told otherwise); a no-op once answered or aborted. */
  release(status?: number): void;
  /** Resolves with the time the caller dropped the request before it was answered (a cancel, a kill). */
  aborted: Promise<number>;
  /** Resolves with the time the answer was handed to the socket. */
  answered: Promise<number>;
  readonly held: boolean;
}

export interface Receiver extends AsyncDisposable {
  url: string;
  calls: HookCall[];
  /** Calls whose body matches are held open (the run stays in progress) until released. */
  hold(pred: (b: HookBody) => boolean): void;
  /** Resolves with the first call matching, already received or still to come. */
  eventually(pred: (c: HookCall) => boolean, timeoutMs?: number): Promise<HookCall>;
  /** Calls of one agent, in arrival order. */
  of(agentId: string): HookCall[];
}

/** The identity of one piece of work: a slot (agent and scheduled time) at one attempt. Twice is a duplicate. */
export const workKey = (b: HookBody) => `${b.agentId}@${b.scheduledAt}#${b.attempt}`;

/** Keys done more than once among `calls`. */
export function duplicates(calls: readonly HookCall[]): string[] {
  const seen = new Map<string, number>();
  for (const c of calls) seen.set(workKey(c.body), (seen.get(workKey(c.body)) ?? 0) + 1);
  return [...seen].filter(([, n]) => n > 1).map(([k, n]) => `${k} ×${n}`);
}

export async function startReceiver(): Promise<Receiver> {
  const calls: HookCall[] = [];
  const holds: ((b: HookBody) => boolean)[] = [];
  const waiters = new Set<{ pred: (c: HookCall) => boolean; resolve: (c: HookCall) => void }>();
  const open = new Set<ServerResponse>();
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      let body: HookBody;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as HookBody;
      } catch {
        res.writeHead(400).end();
        return;
      }
      let done = false;
      let setAborted!: (t: number) => void;
      let setAnswered!: (t: number) => void;
      const aborted = new Promise<number>((r) => (setAborted = r));
      const answered = new Promise<number>((r) => (setAnswered = r));
      open.add(res);
      res.on('close', () => {
        open.delete(res);
        if (!done) {
          done = true;
          setAborted(Date.now());
        }
      });
      const release = (status = 200) => {
        if (done) return;
        done = true;
        res.writeHead(status, { 'content-type': 'text/plain' }).end('ok', () => setAnswered(Date.now()));
      };
      const held = holds.some((h) => h(body));
      const call: HookCall = { body, receivedAt: Date.now(), release, aborted, answered, held };
      calls.push(call);
      for (const w of waiters) {
        if (w.pred(call)) {
          waiters.delete(w);
          w.resolve(call);
        }
      }
      if (!held) release();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/hook`,
    calls,
    hold: (pred) => void holds.push(pred),
    of: (agentId) => calls.filter((c) => c.body.agentId === agentId),
    eventually(pred, timeoutMs = 15_000) {
      const seen = calls.find(pred);
      if (seen) return Promise.resolve(seen);
      return new Promise<HookCall>((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.delete(waiter);
          reject(new Error(`receiver: no matching call within ${timeoutMs} ms; calls: ${JSON.stringify(calls.map((c) => c.body))}`));
        }, timeoutMs);
        const waiter = { pred, resolve: (c: HookCall) => (clearTimeout(timer), resolve(c)) };
        waiters.add(waiter);
      });
    },
    async [Symbol.asyncDispose]() {
      for (const c of calls) c.release();
      for (const res of open) res.destroy();
      const closed = new Promise<void>((r) => server.close(() => r()));
      server.closeAllConnections(); // the servers' idle keep-alive sockets would hold close() for seconds
      await closed;
    },
  };
}

// ---------- server processes ----------

export interface Instance {
  readonly index: number;
  /** Base URL of the current process (a restart gets a new port). */
  readonly url: string;
  readonly pid: number;
  /** Every line the current and earlier processes of this slot printed, for failure messages. */
  readonly log: string[];
  readonly alive: boolean;
  /** This process's id in the instances table (found by its pid). */
  id(): Promise<string>;
  kill9(): Promise<void>;
  /** SIGTERM and wait for the exit (the server's clean shutdown). */
  stop(): Promise<void>;
  freeze(): void;
  thaw(): void;
  /** A new process in this slot (after kill9 or stop), same environment. */
  restart(): Promise<void>;
}

export interface Reply {
  status: number;
  body: any;
}

export interface Cluster extends AsyncDisposable {
  instances: Instance[];
  /** DATABASE_URL of the processes; its `application_name` marks their connections. */
  dbUrl: string;
  schema: string;
  applicationName: string;
  /** A token of `sub` (an admin when `role` is "admin"), signed with the processes' JWT_SECRET. */
  token(sub?: string, role?: string): Promise<string>;
  /** A REST call to instance `i` (as alice unless a token is given). */
  call(i: number, method: string, path: string, body?: unknown, token?: string): Promise<Reply>;
  /** The instance whose process has the instances-table id `id`, or undefined. */
  byId(id: string): Promise<Instance | undefined>;
  /** A plain client on the test database, for what the cluster must survive (terminated backends). */
  admin(): Promise<pg.Client>;
}

export interface ClusterOptions {
  /** @default 3 */
  size?: number;
  /** Extra environment for every process. */
  env?: Record<string, string>;
}

/**
 * Short on purpose: an instance that stops heartbeating is given up on after INSTANCE_LEASE_MS, so a
 * dead or frozen holder is noticed in seconds, not the default 30 s. Retries start 100 ms after a failure.
 */
export const CLUSTER_ENV = {
  INSTANCE_HEARTBEAT_MS: '500',
  INSTANCE_LEASE_MS: '3000',
  RETRY_BASE_DELAY_MS: '100',
  RETRY_MAX_DELAY_MS: '1000',
  WEBHOOK_ALLOWED_HOSTS: '127.0.0.1',
};

/** A process still starting after this is broken; tsx compiles the server on each start (~1–2 s). */
const START_TIMEOUT_MS = 20_000;

/** The part of a process's output that explains a failure: the head of its last start's stderr (the error and its stack). */
function tell(log: readonly string[], lines = 15): string {
  const from = log.lastIndexOf(log.findLast((l) => l.startsWith('--- start')) ?? '');
  return log.slice(Math.max(0, from)).filter((l) => l.startsWith('stderr')).slice(0, lines).join('\n');
}

function spawnServer(env: NodeJS.ProcessEnv, log: string[]): { child: ChildProcess; url: Promise<string> } {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/runtime/node.ts'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const url = new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start within ${START_TIMEOUT_MS} ms:\n${tell(log)}`)), START_TIMEOUT_MS);
    // 'close', not 'exit': it comes after the last line of stderr, which says why.
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`server exited (${code ?? signal}) before listening:\n${tell(log)}`));
    });
    createInterface({ input: child.stdout! }).on('line', (line) => {
      log.push(line);
      const m = /"url":"([^"]+)"/.exec(line);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
    createInterface({ input: child.stderr! }).on('line', (line) => log.push(`stderr: ${line}`));
  });
  // A process that exits later must not turn the start promise into an unhandled rejection.
  url.catch(() => {});
  return { child, url };
}

const exited = (child: ChildProcess) =>
  child.exitCode !== null || child.signalCode !== null ? Promise.resolve() : new Promise<void>((r) => child.once('exit', () => r()));

/** Waits for `child` to exit; SIGKILL after `ms`. */
async function reap(child: ChildProcess, ms: number): Promise<void> {
  const timer = setTimeout(() => child.kill('SIGKILL'), ms);
  await exited(child);
  clearTimeout(timer);
}

export async function startCluster(options: ClusterOptions = {}): Promise<Cluster> {
  if (!TEST_POSTGRES_URL) throw new Error('startCluster needs TEST_POSTGRES_URL');
  const db = await pgSchema();
  // Migrated here, naming the schema: a server on a search_path schema lets Kysely's Migrator look for its
  // bookkeeping tables in every schema of the database, so while another test's schema has them it skips
  // creating its own and fails ("kysely_migration_lock" does not exist). Several instances migrating at
  // once is covered by the migrations tests.
  const kdb = new Kysely<unknown>({ dialect: postgresDialect(db.url) });
  try {
    await migrate(kdb, { schema: db.schema });
  } catch (err) {
    await db[Symbol.asyncDispose]();
    throw err;
  } finally {
    await kdb.destroy();
  }
  const applicationName = `cluster_${db.schema}`;
  const u = new URL(db.url);
  u.searchParams.set('application_name', applicationName);
  const dbUrl = u.toString();
  const env: NodeJS.ProcessEnv = { ...process.env, ...CLUSTER_ENV, ...options.env, PORT: '0', HOST: '127.0.0.1', DATABASE_URL: dbUrl, JWT_SECRET: TEST_SECRET };
  const auth = createAuth({ secret: TEST_SECRET });
  const adminToken = await auth.sign({ sub: 'root', role: 'admin' });
  const aliceToken = await auth.sign({ sub: 'alice' });
  const admins: pg.Client[] = [];

  async function request(base: string, method: string, path: string, body?: unknown, token = aliceToken): Promise<Reply> {
    const headers: Record<string, string> = { authorization: `Bearer ${token}` };
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(base + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal: AbortSignal.timeout(5_000) });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      // not JSON: the caller asserts on the text
    }
    return { status: res.status, body: parsed };
  }

  function makeInstance(index: number): Instance & { start(): Promise<void>; child(): ChildProcess | undefined } {
    const log: string[] = [];
    let child: ChildProcess | undefined;
    let url = '';
    let id: string | undefined;
    let frozen = false;
    const inst = {
      index,
      get url() {
        return url;
      },
      get pid() {
        return child?.pid ?? -1;
      },
      log,
      get alive() {
        return !!child && child.exitCode === null && child.signalCode === null;
      },
      child: () => child,
      async start() {
        for (let attempt = 1; ; attempt++) {
          log.push(`--- start of process ${index} ---`);
          const s = spawnServer(env, log);
          child = s.child;
          id = undefined;
          frozen = false;
          try {
            url = await s.url;
            return;
          } catch (err) {
            // Kysely's Migrator introspects every schema of the database at each start, and that query
            // fails while another test creates or drops its own schema in the same database at that
            // moment. Not a cluster failure: start again (twice at most), saying so.
            if (attempt >= 3 || !/PostgresIntrospector|migration\/migrator/.test(tell(log, Infinity))) throw err;
            console.warn(`cluster: process ${index} failed in Kysely's schema introspection at start (concurrent DDL in another schema); starting it again`);
          }
        }
      },
      async id() {
        if (id) return id;
        const pid = inst.pid;
        id = await until(`instance ${index} (pid ${pid}) in GET /api/instances`, async () => {
          const r = await request(url, 'GET', '/api/instances', undefined, adminToken);
          return (r.body?.data as { id: string; pid: number }[] | undefined)?.find((x) => x.pid === pid)?.id;
        });
        return id;
      },
      async kill9() {
        if (!child) return;
        child.kill('SIGKILL');
        await exited(child);
      },
      async stop() {
        if (!child || !inst.alive) return;
        if (frozen) inst.thaw();
        child.kill('SIGTERM');
        await reap(child, 15_000);
      },
      freeze() {
        frozen = true;
        child?.kill('SIGSTOP');
      },
      thaw() {
        frozen = false;
        child?.kill('SIGCONT');
      },
      async restart() {
        if (inst.alive) await inst.stop();
        await inst.start();
      },
    };
    return inst;
  }

  const instances = Array.from({ length: options.size ?? 3 }, (_, i) => makeInstance(i));
  const cluster: Cluster = {
    instances,
    dbUrl,
    schema: db.schema,
    applicationName,
    token: (sub = 'alice', role?: string) => auth.sign({ sub, ...(role && { role }) }),
    call: (i, method, path, body, token) => request(instances[i]!.url, method, path, body, token),
    async byId(wanted) {
      for (const inst of instances) if (inst.alive && (await inst.id().catch(() => undefined)) === wanted) return inst;
      return undefined;
    },
    async admin() {
      const c = new pg.Client(TEST_POSTGRES_URL);
      await c.connect();
      admins.push(c);
      return c;
    },
    async [Symbol.asyncDispose]() {
      // Always, even after a failed test: wake frozen processes (a stopped one ignores SIGTERM), stop
      // everything, then drop the schema.
      const children = instances.map((i) => i.child()).filter((c): c is ChildProcess => !!c && c.exitCode === null && c.signalCode === null);
      for (const c of children) c.kill('SIGCONT');
      for (const c of children) c.kill('SIGTERM');
      await Promise.all(children.map((c) => reap(c, 5_000)));
      for (const c of admins) await c.end().catch(() => {});
      await db[Symbol.asyncDispose]();
    },
  };
  try {
    await Promise.all(instances.map((i) => i.start()));
  } catch (err) {
    await cluster[Symbol.asyncDispose]();
    throw err;
  }
  return cluster;
}
