import type { Dialect } from 'kysely';
import { createApp } from '../app.ts';
import { ConfigError, isPostgresUrl, loadConfig } from '../config.ts';
import { SHUTDOWN_GRACE_MS } from '../core/limits.ts';
import { createConsoleLogger } from './logger.ts';
import { loadSecrets } from './secrets.ts';

/** What differs between Node and Deno: the environment, the SQLite driver, signals and exit. */
export interface RuntimePorts {
  env: Record<string, string | undefined>;
  /** The Kysely dialect for DATABASE_URL (creating a SQLite file's folder if needed). */
  openDatabase(url: string): Promise<Dialect>;
  onShutdownSignal(fn: (signal: string) => void): void;
  exit(code: number): never;
  print(line: string): void;
  printError(line: string): void;
}

export async function main(ports: RuntimePorts): Promise<void> {
  let config;
  try {
    config = loadConfig(ports.env);
  } catch (err) {
    if (err instanceof ConfigError) {
      ports.printError(err.message);
      ports.exit(1);
    }
    throw err;
  }
  const logger = createConsoleLogger((line, isError) => (isError ? ports.printError(line) : ports.print(line)));
  const secrets = loadSecrets(config);
  const dialect = await ports.openDatabase(config.DATABASE_URL);
  const app = await createApp({ config, dialect, jwtSecret: secrets.jwtSecret, webhookSecret: secrets.webhookSecret, logger });
  const { port, host } = await app.listen();
  const base = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  logger.info('agent scheduler listening', { url: base, database: isPostgresUrl(config.DATABASE_URL) ? 'postgres' : config.DATABASE_URL });
  if (secrets.generated) {
    const token = await app.auth.sign({ sub: 'admin', role: 'admin' }, '30d');
    ports.print('');
    ports.print(secrets.created ? 'No JWT_SECRET was set: generated one in the data folder (mode 0600).' : 'No JWT_SECRET is set: using the generated one in the data folder.');
    ports.print('An admin token for this server (valid 30 days):');
    ports.print('');
    ports.print(`  export TOKEN=${token}`);
    ports.print('');
    ports.print(`Try: curl -H "Authorization: Bearer $TOKEN" ${base}/api/agents`);
    ports.print('');
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
