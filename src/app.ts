import { Kysely, type Dialect } from 'kysely';
import type { Config } from './config.ts';
import type { Clock } from './core/clock.ts';
import { SHUTDOWN_GRACE_MS } from './core/limits.ts';
import { createHandlerRegistry, type HandlerDefinition, type HandlerRegistry } from './core/handlers.ts';
import { silentLogger, type Logger } from './core/logger.ts';
import { createScheduler } from './core/scheduler.ts';
import { demoHandler } from './handlers/demo.ts';
import { createWebhookHandler } from './handlers/webhook.ts';
import { createAuth } from './services/auth.ts';
import { createServices } from './services/services.ts';
import { migrate } from './storage/migrations.ts';
import { createRepository } from './storage/repository.ts';
import type { Database } from './storage/schema.ts';
import { createHttpServer } from './transport/http.ts';
import { createRestHandler } from './transport/rest/handler.ts';
import { attachSocketIo } from './transport/socketio.ts';
import { createTrpcTransport } from './transport/trpc/adapter.ts';

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
  /** Handlers an embedding app adds beside `demo` and `webhook`. */
  handlers?: HandlerDefinition<never>[];
  /** @default systemClock */
  clock?: Clock;
  /** @default silentLogger */
  logger?: Logger;
}

export type App = Awaited<ReturnType<typeof createApp>>;

export async function createApp(options: AppOptions) {
  const { config } = options;
  const logger = options.logger ?? silentLogger;
  const auth = createAuth({ secret: options.jwtSecret, issuer: config.JWT_ISSUER, audience: config.JWT_AUDIENCE });
  const db = new Kysely<Database>({ dialect: options.dialect });
  await migrate(db);
  const repo = createRepository(db, logger);

  const handlers: HandlerRegistry = createHandlerRegistry([
    demoHandler as HandlerDefinition<never>,
    createWebhookHandler({ allowedHosts: config.WEBHOOK_ALLOWED_HOSTS, signingSecret: options.webhookSecret }) as HandlerDefinition<never>,
    ...(options.handlers ?? []),
  ]);

  const scheduler = createScheduler({
    store: repo,
    handlers,
    clock: options.clock,
    logger,
    maxConcurrent: config.MAX_CONCURRENT_AGENTS,
    maxRetries: config.MAX_RETRIES,
    retry: { baseDelayMs: config.RETRY_BASE_DELAY_MS, maxDelayMs: config.RETRY_MAX_DELAY_MS },
    timeoutMs: config.AGENT_TIMEOUT_MS,
    runHistoryLimit: config.RUN_HISTORY_LIMIT,
    eventRetentionMs: config.EVENT_RETENTION_MS,
  });
  await scheduler.start();

  const services = createServices({ store: repo, scheduler, handlers, now: options.clock ? () => options.clock!.now() : Date.now });
  const trpc = createTrpcTransport({ auth, services });
  const http = createHttpServer({
    rest: createRestHandler({ services, auth, logger }),
    logger,
    mounts: [{ prefix: '/trpc', handle: trpc.handle }],
    upgrades: [{ prefix: '/trpc', handle: trpc.upgrade }],
    foreignUpgrades: ['/socket.io'],
  });
  const socketio = attachSocketIo(http.server, { auth, services, logger });

  let closed: Promise<void> | undefined;
  /** Stops everything; requests and runs in flight get `graceMs` to finish. */
  async function close(graceMs = SHUTDOWN_GRACE_MS): Promise<void> {
    closed ??= (async () => {
      // Live connections first (they would hold the HTTP server open), then in-flight requests, runs, the database.
      await socketio.close();
      await trpc.close();
      await http.close(graceMs);
      await scheduler.stop(graceMs);
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
    listen: (port = config.PORT, host = config.HOST) => http.listen(port, host),
    close,
    [Symbol.asyncDispose]: () => close(),
  };
}
