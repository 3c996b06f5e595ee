import { z } from 'zod';
import { MAX_CONCURRENCY, MIN_EVENT_RETENTION_MS, MIN_SECRET_BYTES, SCHEDULER_DEFAULTS as D } from './core/limits.ts';
import { MAX_ANSWER_BYTES } from './core/limits.ts';
import { HTTP_DEFAULTS as H } from './core/limits.ts';
import { MANUAL_RUNS_PER_MINUTE, MAX_AGENTS_PER_OWNER } from './core/limits.ts';
import { JWT_MAX_TTL_S, MAX_SUBSCRIPTIONS_PER_SOCKET, SOCKET_AUTH_GRACE_MS, TRPC_MAX_BATCH } from './core/limits.ts';
import { parsePublicKeyPem } from './services/keys.ts';

/**
 * The server's configuration, one environment variable a field (the README's "Configuration" table).
 * Defaults and bounds come from `core/limits.ts`, where every limit is declared once.
 * `loadConfig` takes the environment as a plain record so that tests (and Deno) pass their own;
 * only `runtime/` hands it `process.env`.
 */

const intFrom = (min: number, max = Number.MAX_SAFE_INTEGER) =>
  z
    .string()
    .trim()
    .regex(/^\d+$/, { error: `expected a whole number from ${min} to ${max}` })
    .transform(Number)
    .pipe(z.number().int().min(min, { error: `expected a whole number from ${min} to ${max}` }).max(max, { error: `expected a whole number from ${min} to ${max}` }));

const hostList = z
  .string()
  .transform((s) => s.split(',').map((h) => h.trim().toLowerCase()).filter(Boolean))
  .pipe(z.array(z.string()).min(1, { error: 'expected a comma-separated list of at least one host' }));

/** `postgres://…` or `postgresql://…`: the one test for "this database is PostgreSQL", used wherever a driver is picked. */
export const isPostgresUrl = (url: string): boolean => /^postgres(ql)?:\/\//.test(url);

const price = z.strictObject({
  inputPerMTok: z.number({ error: 'expected a number of USD per million input tokens' }).nonnegative(),
  outputPerMTok: z.number({ error: 'expected a number of USD per million output tokens' }).nonnegative(),
});
/** `{ "<model>": { "inputPerMTok": 2.5, "outputPerMTok": 10 } }`: USD per million tokens (CONTRACT §9). */
const prices = z
  .string()
  .transform((s, ctx) => {
    try {
      return JSON.parse(s) as unknown;
    } catch {
      ctx.addIssue({ code: 'custom', message: 'expected JSON such as {"gpt-4o":{"inputPerMTok":2.5,"outputPerMTok":10}}' });
      return z.NEVER;
    }
  })
  .pipe(z.record(z.string(), price, { error: 'expected an object of models, each { inputPerMTok, outputPerMTok }' }));

/**
 * CORS_ORIGINS: `*`, or a comma-separated list of origins (`scheme://host[:port]`, nothing after), each kept in the
 * form browsers send in `Origin` (lower-case host, no default port). Empty: the server's own origin only.
 */
const originList = z
  .string()
  .transform((s, ctx) => {
    const entries = s.split(',').map((o) => o.trim()).filter(Boolean);
    if (entries.includes('*')) return ['*'];
    const origins: string[] = [];
    for (const entry of entries) {
      let url: URL | undefined;
      try {
        url = new URL(entry);
      } catch {
        // reported below
      }
      if (!url || !/^https?:$/.test(url.protocol) || url.pathname !== '/' || url.search || url.hash || url.username || url.password) {
        ctx.addIssue({ code: 'custom', message: `expected * or a comma-separated list of origins such as https://app.example.com (scheme, host and port only; ${JSON.stringify(entry)} is not one)` });
        return z.NEVER;
      }
      origins.push(url.origin);
    }
    return origins;
  });

const databaseUrl = z
  .string()
  .trim()
  .refine((s) => s === ':memory:' || s.startsWith('file:') || isPostgresUrl(s), {
    error: 'expected file:PATH, :memory: or postgres://…',
  });

/** JWT_JWKS_URL: http or https only (jose fetches it; a file: or data: URL is a mistake, not a key source). */
const jwksUrl = z
  .string()
  .trim()
  .refine((s) => {
    try {
      return /^https?:$/.test(new URL(s).protocol);
    } catch {
      return false;
    }
  }, { error: 'expected an http(s) URL such as https://idp.example.com/.well-known/jwks.json' });

/** JWT_PUBLIC_KEY: read here (type and DER shape) so a bad key stops the start, not every later request. */
const publicKeyPem = z.string().transform((s, ctx) => {
  try {
    return parsePublicKeyPem(s).pem;
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: (err as Error).message });
    return z.NEVER;
  }
});

const envSchema = z.object({
  PORT: intFrom(0, 65535).default(5000),
  HOST: z.string().trim().min(1, { error: 'expected a host name or address' }).default('127.0.0.1'),
  DATABASE_URL: databaseUrl.default('file:./data/scheduler.db'),
  JWT_SECRET: z
    .string()
    .refine((s) => new TextEncoder().encode(s).length >= MIN_SECRET_BYTES, { error: `expected at least ${MIN_SECRET_BYTES} bytes` })
    .optional(),
  /** When set, `GET /metrics` answers only `Authorization: Bearer <METRICS_TOKEN>` (an API token does not count). */
  METRICS_TOKEN: z.string().regex(/^\S{16,}$/, { error: 'expected at least 16 characters, without spaces' }).optional(),
  JWT_ISSUER: z.string().min(1).optional(),
  JWT_AUDIENCE: z.string().min(1).optional(),
  /** An identity provider's JWKS endpoint: RS256, ES256 and EdDSA tokens verify with its keys (CONTRACT §10). */
  JWT_JWKS_URL: jwksUrl.optional(),
  /** One PEM SPKI public key (RSA, EC P-256 or Ed25519; literal \n allowed): tokens of its algorithm verify with it. */
  JWT_PUBLIC_KEY: publicKeyPem.optional(),
  /** The claim whose value "admin" (or an array holding it) makes a token admin's; a dotted path reaches into objects. */
  JWT_ROLE_CLAIM: z.string().trim().regex(/^\S+$/, { error: 'expected a claim name such as role or realm_access.roles' }).default('role'),
  /** Longest token lifetime in seconds: a token whose exp is further than this from its iat (or now) is 401. */
  JWT_MAX_TTL: intFrom(1).default(JWT_MAX_TTL_S),
  /** Time a Socket.IO / tRPC WebSocket has to authenticate before it is closed. */
  SOCKET_AUTH_GRACE_MS: intFrom(100).default(SOCKET_AUTH_GRACE_MS),
  /** Agent subscriptions one socket may hold at once. */
  MAX_SUBSCRIPTIONS_PER_SOCKET: intFrom(1).default(MAX_SUBSCRIPTIONS_PER_SOCKET),
  /** Calls in one tRPC batch (HTTP or one WebSocket message); more is a 400. */
  TRPC_MAX_BATCH: intFrom(1).default(TRPC_MAX_BATCH),
  /** `json` (one object per line) or `pretty` (readable lines); unset, the runtime picks `pretty` on a terminal and `json` otherwise. */
  LOG_FORMAT: z.enum(['json', 'pretty'], { error: 'expected json or pretty' }).optional(),
  /** The least severe level logged: debug adds a line per request. */
  LOG_LEVEL: z.enum(['debug', 'info', 'warn', 'error'], { error: 'expected debug, info, warn or error' }).default('info'),
  MAX_CONCURRENT_AGENTS: intFrom(1, MAX_CONCURRENCY).default(D.MAX_CONCURRENT_AGENTS),
  /** One owner's running runs at most, across every instance (admins included); the rest wait queued. Unset: no cap. */
  MAX_CONCURRENT_PER_OWNER: intFrom(1, MAX_CONCURRENCY).optional(),
  MAX_RETRIES: intFrom(0, 100).default(D.MAX_RETRIES),
  RETRY_BASE_DELAY_MS: intFrom(1).default(D.RETRY_BASE_DELAY_MS),
  RETRY_MAX_DELAY_MS: intFrom(1).default(D.RETRY_MAX_DELAY_MS),
  AGENT_TIMEOUT_MS: intFrom(1).default(D.AGENT_TIMEOUT_MS),
  WEBHOOK_ALLOWED_HOSTS: hostList.default(['localhost', '127.0.0.1', '::1']),
  WEBHOOK_SIGNING_SECRET: z.string().min(1).optional(),
  /** Largest JSON answer, and longest NDJSON line, a webhook may send; past it the run fails. At least 64 KiB. */
  WEBHOOK_MAX_ANSWER_BYTES: intFrom(65_536).default(MAX_ANSWER_BYTES),
  /** Hosts an `llm` agent's baseUrl may name; the same rules as WEBHOOK_ALLOWED_HOSTS. */
  LLM_ALLOWED_HOSTS: hostList.default(['localhost', '127.0.0.1', '::1']),
  /** Largest JSON answer, and longest server-sent event, an llm server may send; past it the run fails. At least 64 KiB. */
  LLM_MAX_ANSWER_BYTES: intFrom(65_536).default(MAX_ANSWER_BYTES),
  /** USD per million tokens by model, pricing usage that comes without a cost. */
  LLM_PRICES: prices.default({}),
  /** Runs kept per agent; older ones are trimmed. */
  RUN_HISTORY_LIMIT: intFrom(1).default(D.RUN_HISTORY_LIMIT),
  /** Agents one owner may hold; one more is a 409. */
  MAX_AGENTS_PER_OWNER: intFrom(1).default(MAX_AGENTS_PER_OWNER),
  /** Manual runs one agent may be asked for in any 60 s (counted in the database, across instances); one more is a 429. */
  MANUAL_RUNS_PER_MINUTE: intFrom(1).default(MANUAL_RUNS_PER_MINUTE),
  /** How long stored events are kept for stream resume; never under an hour, so a client can resume after a short outage. */
  EVENT_RETENTION_MS: intFrom(MIN_EVENT_RETENTION_MS).default(D.EVENT_RETENTION_MS),
  /** How often this instance renews its row in the instances table. */
  INSTANCE_HEARTBEAT_MS: intFrom(1).default(D.INSTANCE_HEARTBEAT_MS),
  /** An instance whose heartbeat is older than this is no longer live; more than the heartbeat. */
  INSTANCE_LEASE_MS: intFrom(1).default(D.INSTANCE_LEASE_MS),
  /** Browser origins besides the server's own that may call REST, tRPC and Socket.IO (`*`: any). */
  CORS_ORIGINS: originList.default([]),
  /** Time a client has to send a request's headers; then `408` and the connection is closed. */
  HTTP_HEADERS_TIMEOUT_MS: intFrom(1).default(H.HTTP_HEADERS_TIMEOUT_MS),
  /** Time a client has to send a whole request; then `408`. At least HTTP_HEADERS_TIMEOUT_MS. */
  HTTP_REQUEST_TIMEOUT_MS: intFrom(1).default(H.HTTP_REQUEST_TIMEOUT_MS),
  /** An idle keep-alive connection is closed after this. */
  HTTP_KEEP_ALIVE_TIMEOUT_MS: intFrom(1).default(H.HTTP_KEEP_ALIVE_TIMEOUT_MS),
  /** Open connections at once; a new one past this is closed without an answer. */
  HTTP_MAX_CONNECTIONS: intFrom(1).default(H.HTTP_MAX_CONNECTIONS),
  /** Largest request head; past it `431`. */
  HTTP_MAX_HEADER_BYTES: intFrom(1024, 1024 * 1024).default(H.HTTP_MAX_HEADER_BYTES),
});

export type Config = Readonly<z.output<typeof envSchema>>;

/** A bad variable: the message is the one line the process prints before exiting with 1. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

function shown(value: unknown, secret: boolean): string {
  if (value === undefined) return 'nothing';
  if (secret) return `a value of ${new TextEncoder().encode(String(value)).length} bytes`;
  return JSON.stringify(value);
}

const SECRET_VARIABLES = new Set(['JWT_SECRET', 'WEBHOOK_SIGNING_SECRET', 'METRICS_TOKEN']);
// A PEM pasted into JWT_PUBLIC_KEY may be a private key by mistake: its text is never echoed either.
SECRET_VARIABLES.add('JWT_PUBLIC_KEY');

export function loadConfig(env: Record<string, string | undefined>): Config {
  // An empty variable counts as unset: `PORT= npm start` should not be an error.
  const picked: Record<string, string> = {};
  for (const key of Object.keys(envSchema.shape)) {
    const v = env[key];
    if (v !== undefined && v !== '') picked[key] = v;
  }
  const parsed = envSchema.safeParse(picked);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const name = String(issue.path[0] ?? 'environment');
    throw new ConfigError(
      `Invalid environment variable ${name}: ${issue.message}, got ${shown(picked[name], SECRET_VARIABLES.has(name))}`,
    );
  }
  const cfg = parsed.data;
  if (cfg.RETRY_MAX_DELAY_MS < cfg.RETRY_BASE_DELAY_MS) {
    throw new ConfigError(
      `Invalid environment variable RETRY_MAX_DELAY_MS: expected at least RETRY_BASE_DELAY_MS (${cfg.RETRY_BASE_DELAY_MS}), got ${cfg.RETRY_MAX_DELAY_MS}`,
    );
  }
  if (cfg.INSTANCE_LEASE_MS <= cfg.INSTANCE_HEARTBEAT_MS) {
    throw new ConfigError(
      `Invalid environment variable INSTANCE_LEASE_MS: expected more than INSTANCE_HEARTBEAT_MS (${cfg.INSTANCE_HEARTBEAT_MS}), got ${cfg.INSTANCE_LEASE_MS}`,
    );
  }
  if (cfg.JWT_JWKS_URL !== undefined && cfg.JWT_PUBLIC_KEY !== undefined) {
    throw new ConfigError('Invalid environment variable JWT_PUBLIC_KEY: expected JWT_JWKS_URL or JWT_PUBLIC_KEY, not both');
  }
  if (cfg.HTTP_REQUEST_TIMEOUT_MS < cfg.HTTP_HEADERS_TIMEOUT_MS) {
    throw new ConfigError(
      `Invalid environment variable HTTP_REQUEST_TIMEOUT_MS: expected at least HTTP_HEADERS_TIMEOUT_MS (${cfg.HTTP_HEADERS_TIMEOUT_MS}), got ${cfg.HTTP_REQUEST_TIMEOUT_MS}`,
    );
  }
  return Object.freeze({
    ...cfg,
    CORS_ORIGINS: Object.freeze([...cfg.CORS_ORIGINS]) as string[],
    WEBHOOK_ALLOWED_HOSTS: Object.freeze([...cfg.WEBHOOK_ALLOWED_HOSTS]) as string[],
    LLM_ALLOWED_HOSTS: Object.freeze([...cfg.LLM_ALLOWED_HOSTS]) as string[],
    LLM_PRICES: Object.freeze({ ...cfg.LLM_PRICES }),
  });
}
