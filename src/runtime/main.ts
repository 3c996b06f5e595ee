import type { Dialect } from 'kysely';
import { createApp, PortInUseError } from '../app.ts';
import { ConfigError, isPostgresUrl, loadConfig } from '../config.ts';
import { SHUTDOWN_GRACE_MS } from '../core/limits.ts';
import { acceptsOwnTokens } from '../services/auth.ts';
import { DatabaseInUseError } from '../storage/dialects/sqlite-lock.ts';
import { createLogger } from './logger.ts';
import { loadSecrets } from './secrets.ts';

/** What differs between Node and Deno: the environment, the SQLite driver, signals and exit. */
export interface RuntimePorts {
  env: Record<string, string | undefined>;
  /**
   * The Kysely dialect for DATABASE_URL (creating a SQLite file's folder if needed). A SQLite file is
   * taken for this process alone before it is opened: `DatabaseInUseError` if another server has it.
   */
  openDatabase(url: string): Promise<Dialect>;
  /** This machine's host name and this process's id, for the instances list. */
  host: string;
  pid: number;
  onShutdownSignal(fn: (signal: string) => void): void;
  exit(code: number): never;
  print(line: string): void;
  /** Whether stdout is a terminal: log lines are then readable rather than JSON (unless LOG_FORMAT says). @default false */
  isTTY?: boolean;
  printError(line: string): void;
}

/** How to get a token signed with the data folder's secret, on any later start (README, "Quick start"). */
export const TOKEN_COMMAND = 'TOKEN=$(npm run -s token -- --sub admin --role admin --ttl 30d)';

/** Failures a user can fix, told in one line (then exit code 1) rather than with a stack trace. */
const isOneLiner = (err: unknown): err is Error => err instanceof ConfigError || err instanceof DatabaseInUseError || err instanceof PortInUseError;

export async function main(ports: RuntimePorts): Promise<void> {
  /** One step of the start; a failure a user can fix ends the process with its one line and exit code 1. */
  async function step<T>(run: () => T | Promise<T>, cleanup?: () => Promise<void>): Promise<T> {
    try {
      return await run();
    } catch (err) {
      if (!isOneLiner(err)) throw err;
      ports.printError(err.message);
      await cleanup?.().catch(() => {});
      return ports.exit(1);
    }
  }

  const config = await step(() => loadConfig(ports.env));
  // JSON lines off a terminal (a log collector reads them), readable ones on it, unless LOG_FORMAT says.
  const logger = createLogger({ format: config.LOG_FORMAT ?? (ports.isTTY ? 'pretty' : 'json'), level: config.LOG_LEVEL, colorize: ports.isTTY === true, write: ports.print });
  const secrets = loadSecrets(config);
  // Start order (README, "Running several instances"): the database file first (a second server on it
  // stops here, before any migration), then the port, and only then the scheduler with its recovery.
  const dialect = await step(() => ports.openDatabase(config.DATABASE_URL));
  const app = await createApp({
    config, dialect, jwtSecret: secrets.jwtSecret, webhookSecret: secrets.webhookSecret, logger, instance: { host: ports.host, pid: ports.pid }, env: ports.env,
  });
  const address = await step(() => app.listen(), () => app.close(0));
  const { port, host } = address;
  const base = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  // The process's own pid, so a walkthrough can `kill -9` this server and not every one on the machine (README, "See it work").
  logger.info('agent scheduler listening', { url: base, database: isPostgresUrl(config.DATABASE_URL) ? 'postgres' : config.DATABASE_URL, pid: ports.pid });
  // The admin token is printed once, on the start that generated the secret: later starts (whose logs may be kept
  // or shared) say how to get one instead (`npm run -s token`, signed with the same secret). Beside an identity
  // provider without JWT_SECRET the generated secret admits no token, so there is none to print.
  if (!acceptsOwnTokens(config)) {
    logger.info('no admin token printed: an identity provider is configured and JWT_SECRET is not, so only its tokens are accepted', {
      identityProvider: config.JWT_JWKS_URL !== undefined ? 'JWT_JWKS_URL' : 'JWT_PUBLIC_KEY',
      adminClaim: `${config.JWT_ROLE_CLAIM} = "admin"`,
    });
  } else if (secrets.created) {
    const token = await app.auth.sign({ sub: 'admin', role: 'admin' }, '30d');
    ports.print('');
    ports.print('No JWT_SECRET was set: generated one in the data folder (mode 0600).');
    ports.print('An admin token for this server (valid 30 days; shown on this first start only):');
    ports.print('');
    ports.print(`  export TOKEN=${token}`);
    ports.print('');
    ports.print(`Try: curl -H "Authorization: Bearer $TOKEN" ${base}/api/agents`);
    ports.print(`Lost it? ${TOKEN_COMMAND}`);
    ports.print('');
  } else if (secrets.generated) {
    ports.print(`No JWT_SECRET is set: using the generated one in the data folder. For a token: ${TOKEN_COMMAND}`);
  }
  let stopping = false;
  ports.onShutdownSignal((signal) => {
    if (stopping) return;
    stopping = true;
    logger.info('shutting down', { signal });
    app.close(SHUTDOWN_GRACE_MS).then(
      () => ports.exit(0),
      (err: unknown) => {
        logger.error('shutdown failed', { error: err instanceof Error ? err.message : String(err) });
        ports.exit(1);
      },
    );
  });
}
