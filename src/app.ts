import { Kysely, type Dialect } from 'kysely';
import { isPostgresUrl, type Config } from './config.ts';
import { systemClock, type Clock } from './core/clock.ts';
import { errorText } from './core/errors.ts';
import { SHUTDOWN_GRACE_MS } from './core/limits.ts';
import { createHandlerRegistry, type HandlerDefinition, type HandlerRegistry } from './core/handlers.ts';
import { createInstanceRegistry, newInstanceId } from './core/instances.ts';
import { silentLogger, type Logger } from './core/logger.ts';
import type { RunObserver } from './core/observer.ts';
import { createScheduler } from './core/scheduler.ts';
import { createLocalSignals, type Signals } from './core/signals.ts';
import { demoHandler } from './handlers/demo.ts';
import { createLlmHandler } from './handlers/llm.ts';
import { createWebhookHandler } from './handlers/webhook.ts';
import { listeningPort } from './transport/guarded-fetch.ts';
import { createAuth } from './services/auth.ts';
import { createHealth } from './services/health.ts';
import { createServices } from './services/services.ts';
import { createRunLogObserver } from './services/run-logs.ts';
import { createTracingObserver } from './services/tracing.ts';
import { migrate } from './storage/migrator.ts';
import { createRepository } from './storage/repository.ts';
import type { Database } from './storage/schema.ts';
import { createHttpServer } from './transport/http.ts';
import { createRestHandler } from './transport/rest/handler.ts';
import { attachSocketIo } from './transport/socketio.ts';
import { createTrpcTransport } from './transport/trpc/adapter.ts';
import { createMetrics } from './transport/metrics.ts';
import { createStaticHandler } from './transport/static.ts';

/**
 * The composition root: builds everything from a config and a database dialect, and disposes
 * everything in reverse. Runtime entries (Node, Deno) and tests all start the server through here.
 * It is the one place that knows the concrete pieces: the repository is handed to the scheduler and
 * the services as the `Store` port, and the transports see only the services.
 */
export interface AppOptions {
  config: Config;
  /** The database driver, chosen by the runtime from DATABASE_URL. */
  dialect: Dialect;
  /** The HS256 secret (JWT_SECRET, or the generated one). */
  jwtSecret: string;
  /** HMAC key for webhook signatures. */
  webhookSecret: string;
  /** Handlers an embedding app adds beside `demo`, `webhook` and `llm`. */
  handlers?: HandlerDefinition<never>[];
  /**
   * Where an `llm` agent's `apiKeyEnv` is read, at run time (the runtime entries pass the process
   * environment). Read only for the variable an agent names; never stored, logged or echoed.
   * @default {} (no keys)
   */
  env?: Readonly<Record<string, string | undefined>>;
  /** @default systemClock */
  clock?: Clock;
  /** @default silentLogger */
  logger?: Logger;
  /**
   * Who this process is, for the instances list (`GET /api/instances`). The runtime entries pass the
   * machine's host name and the process id; core never reads them itself.
   * @default { host: 'unknown', pid: 0 }
   */
  instance?: { host: string; pid: number };
  /**
   * How instances tell each other "look now" (docs/cluster.md).
   * @default LISTEN/NOTIFY on a dedicated connection when DATABASE_URL is PostgreSQL; in-process otherwise
   */
  signals?: Signals;
  /** Told of this instance's runs as they start, end or are skipped (core/observer.ts), beside the built-in metrics, logs and traces. @default none */
  observers?: readonly RunObserver[];
}

/** With notifications to wake them, followers read other instances' events this often only as a fallback. */
const EVENT_POLL_WITH_SIGNALS_MS = 1000;

export type App = Awaited<ReturnType<typeof createApp>>;

/** The port is taken (EADDRINUSE): the one line the process prints before exiting with 1. */
export class PortInUseError extends Error {
  override name = 'PortInUseError';
  constructor(
    readonly port: number,
    readonly host: string,
  ) {
    super(`PORT ${port} is already in use on ${host}; stop the other server or set PORT`);
  }
}

export async function createApp(options: AppOptions) {
  const { config } = options;
  const logger = options.logger ?? silentLogger;
  const auth = createAuth({ secret: options.jwtSecret, explicitSecret: config.JWT_SECRET !== undefined, jwksUrl: config.JWT_JWKS_URL, publicKey: config.JWT_PUBLIC_KEY, roleClaim: config.JWT_ROLE_CLAIM, issuer: config.JWT_ISSUER, audience: config.JWT_AUDIENCE, maxTtlS: config.JWT_MAX_TTL, logger });
  const clock = options.clock ?? systemClock;
  const env = options.env ?? {};
  const db = new Kysely<Database>({ dialect: options.dialect });
  await migrate(db);
  const signals: Signals = options.signals ?? (isPostgresUrl(config.DATABASE_URL)
    ? (await import('./storage/dialects/postgres-signals.ts')).createPostgresSignals({ url: config.DATABASE_URL, logger, clock })
    : createLocalSignals({ logger }));
  const shared = isPostgresUrl(config.DATABASE_URL);
  // On a shared database a committed batch of events wakes every instance's followers (a lost wake-up
  // only waits for the poll); a SQLite file has one writer, whose own events need no waking.
  const repo = createRepository(db, logger, shared
    ? { eventPollMs: EVENT_POLL_WITH_SIGNALS_MS, onEventsCommitted: (lastId) => signals.notify('events', String(lastId)) }
    : {});
  // Our own notifications come back too: only an id past what the bus has seen is worth a read.
  const stopWaking = signals.listen('events', (payload) => {
    if (Number(payload) > scheduler.lastEventId()) void repo.pollEvents();
  });

  // The port this server listens on, read at run time (PORT=0 picks one at listen): webhook and llm calls to it are refused.
  const ownPort = listeningPort(() => http.server.address());
  const handlers: HandlerRegistry = createHandlerRegistry([
    demoHandler as HandlerDefinition<never>,
    createWebhookHandler({ allowedHosts: config.WEBHOOK_ALLOWED_HOSTS, signingSecret: options.webhookSecret, ownPort, maxAnswerBytes: config.WEBHOOK_MAX_ANSWER_BYTES }) as HandlerDefinition<never>,
    createLlmHandler({ allowedHosts: config.LLM_ALLOWED_HOSTS, env: (name) => env[name], clock, ownPort, maxAnswerBytes: config.LLM_MAX_ANSWER_BYTES }) as HandlerDefinition<never>,
    ...(options.handlers ?? []),
  ]);

  const instance = createInstanceRegistry({
    store: repo,
    clock,
    log: logger,
    identity: { id: newInstanceId(), host: options.instance?.host ?? 'unknown', pid: options.instance?.pid ?? 0 },
    maxConcurrent: config.MAX_CONCURRENT_AGENTS,
    heartbeatMs: config.INSTANCE_HEARTBEAT_MS,
    leaseMs: config.INSTANCE_LEASE_MS,
    running: () => scheduler.stats().runningAgentsCount,
    onCapacityChange: () => scheduler.figuresChanged(),
    // On a shared database the heartbeat carries the leases of the runs this instance holds and reaps those
    // of instances that stopped (docs/cluster.md); a SQLite file has one instance, whose leftovers recovery takes.
    ...(shared && { onBeat: () => scheduler.maintainLeases() }),
  });

  // Metrics, logs and traces hear of this instance's runs here (core/observer.ts); an embedder's observers after them.
  // Gauges and subscriber counts are read at scrape time, once the scheduler and the transports below exist.
  const metrics = createMetrics({
    stats: () => scheduler.stats(),
    subscribers: () => ({ socketio: socketio.io.of('/').sockets.size, trpc: trpc.clients().size }),
    token: config.METRICS_TOKEN,
    logger,
  });
  const observers: RunObserver[] = [
    metrics.observer,
    createTracingObserver(),
    createRunLogObserver(logger),
    ...(options.observers ?? []),
  ];
  const scheduler = createScheduler({
    store: repo,
    observers,
    handlers,
    clock,
    logger,
    maxConcurrent: config.MAX_CONCURRENT_AGENTS,
    ...(config.MAX_CONCURRENT_PER_OWNER !== undefined && { maxConcurrentPerOwner: config.MAX_CONCURRENT_PER_OWNER }),
    maxRetries: config.MAX_RETRIES,
    retry: { baseDelayMs: config.RETRY_BASE_DELAY_MS, maxDelayMs: config.RETRY_MAX_DELAY_MS },
    timeoutMs: config.AGENT_TIMEOUT_MS,
    runHistoryLimit: config.RUN_HISTORY_LIMIT,
    prices: config.LLM_PRICES,
    eventRetentionMs: config.EVENT_RETENTION_MS,
    instanceId: instance.id,
    leaseMs: config.INSTANCE_LEASE_MS,
    capacity: instance.capacity,
    // Other instances read the schedule again at once; a lost signal waits for their reconcile.
    onScheduleChange: (agentId) => signals.notify('schedules', agentId),
    onCancelElsewhere: (runId) => signals.notify('cancel', runId),
  });
  // A cancel answered by another instance for a run this one holds: aborted here (not held: nothing to do).
  const stopCancelSignals = shared ? signals.listen('cancel', (runId) => void scheduler.cancel(runId).catch((err: unknown) => logger.warn('could not cancel a run', { runId, error: errorText(err) }))) : () => {};
  const reread = (agentId: string) => void scheduler.reloadSchedule(agentId).catch((err: unknown) => logger.warn('could not read a changed schedule', { agentId, error: errorText(err) }));
  // Our own signals come back too: the revision is the same then, and nothing changes.
  const stopScheduleSignals = shared ? signals.listen('schedules', reread) : () => {};
  const stopReconnect = shared
    ? signals.onReconnect(() => void scheduler.reloadSchedules().catch((err: unknown) => logger.warn('could not read the schedules again', { error: errorText(err) })))
    : () => {};

  // The scheduler starts only once this process owns its port as well as its database (`listen`
  // binds, then starts it): recovery marks the runs a dead process left open as interrupted, and a
  // second server that cannot bind must not do that to the runs of the one that owns the port.
  // Requests that arrive in between wait for the start, so none sees a scheduler that has not loaded.
  let ready = false;
  let openGate!: () => void;
  const gateOpen = new Promise<void>((resolve) => (openGate = resolve));
  const afterStart = <A extends unknown[]>(fn: (...args: A) => void | Promise<void>) =>
    (...args: A): Promise<void> => (ready ? Promise.resolve(fn(...args)) : gateOpen.then(() => fn(...args)));

  // /healthz: degraded while the database does not answer, or (on a shared database) while signals are down.
  const health = createHealth({ store: repo, clock, ...(shared && { signalsConnected: () => signals.connected }) });
  const services = createServices({
    store: repo, scheduler, handlers, instances: instance, now: () => clock.now(), health,
    limits: { maxAgentsPerOwner: config.MAX_AGENTS_PER_OWNER, manualRunsPerMinute: config.MANUAL_RUNS_PER_MINUTE, agentTimeoutMs: config.AGENT_TIMEOUT_MS, leaseMs: config.INSTANCE_LEASE_MS },
  });
  const trpc = createTrpcTransport({ auth, services, maxBatch: config.TRPC_MAX_BATCH, logger, clock, authGraceMs: config.SOCKET_AUTH_GRACE_MS, maxSubscriptions: config.MAX_SUBSCRIPTIONS_PER_SOCKET });
  const upgradeTrpc = afterStart(trpc.upgrade);
  const dashboard = createStaticHandler({ logger });
  const http = createHttpServer({
    rest: afterStart(createRestHandler({ services, auth, logger })),
    logger,
    config,
    mounts: [
      { prefix: '/trpc', handle: afterStart(trpc.handle) }, { prefix: '/metrics', handle: metrics.handle },
      // The dashboard (web/dist): the page at `/` only, and its hashed assets.
      { prefix: '/', exact: true, handle: dashboard }, { prefix: '/assets', handle: dashboard },
    ],
    upgrades: [{
      prefix: '/trpc',
      handle: (req, socket, head) => void upgradeTrpc(req, socket, head).catch((err: unknown) => {
        logger.error('WebSocket upgrade failed', { error: errorText(err) });
        socket.destroy();
      }),
    }],
    foreignUpgrades: ['/socket.io'],
  });
  const socketio = attachSocketIo(http.server, { auth, services, logger, authGraceMs: config.SOCKET_AUTH_GRACE_MS, maxSubscriptions: config.MAX_SUBSCRIPTIONS_PER_SOCKET, clock });

  let started: Promise<void> | undefined;
  /**
   * Registers this instance and starts the scheduler: recovery, catch-up, fires. `listen` calls it once
   * the port is bound; an embedder that serves no HTTP calls it itself. Idempotent.
   */
  function start(): Promise<void> {
    started ??= (async () => {
      try {
        await instance.start();
        await scheduler.start();
      } finally {
        ready = true;
        openGate();
      }
    })();
    return started;
  }

  /** Binds the port (PortInUseError when it is taken), then starts the scheduler. */
  async function listen(port = config.PORT, host = config.HOST): Promise<{ port: number; host: string }> {
    let address;
    try {
      address = await http.listen(port, host);
    } catch (err) {
      if ((err as { code?: unknown } | null)?.code === 'EADDRINUSE') throw new PortInUseError(port, host);
      throw err;
    }
    await start();
    return address;
  }

  let closed: Promise<void> | undefined;
  /** Stops everything; requests and runs in flight get `graceMs` to finish. */
  async function close(graceMs = SHUTDOWN_GRACE_MS): Promise<void> {
    closed ??= (async () => {
      // Requests held for a start that will not come now go on, and end with the server.
      ready = true;
      openGate();
      // Live connections first (they would hold the HTTP server open), then in-flight requests, runs,
      // this instance's row (stopped, so it leaves the list at once), the database.
      await socketio.close();
      await trpc.close();
      await http.close(graceMs);
      await scheduler.stop(graceMs);
      await instance.stop();
      stopWaking();
      stopScheduleSignals();
      stopCancelSignals();
      stopReconnect();
      await signals.close();
      await repo[Symbol.asyncDispose]();
    })();
    return closed;
  }

  return {
    config,
    auth,
    repo,
    handlers,
    scheduler,
    services,
    server: http.server,
    io: socketio.io,
    trpcSockets: trpc.clients,
    /** This app's prom-client Registry (`/metrics`): an embedder may register its own metrics on it. */
    metrics: metrics.registry,
    instance,
    signals,
    start,
    listen,
    close,
    [Symbol.asyncDispose]: () => close(),
  };
}
