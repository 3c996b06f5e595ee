/**
 * Every limit and default the server has, declared once. `config.ts` reads the defaults of the
 * environment variables from here, and each module that enforces a limit imports it from here, so a
 * number is changed in one place and the README's tables can be checked against one file.
 * The reasons for each figure are in the README ("Configuration" and "Errors and limits").
 */

// ---------- request and message sizes ----------

/** Largest request body, tRPC HTTP body, WebSocket message and Socket.IO packet. @default 1048576 (1 MiB) */
export const MAX_BODY_BYTES = 1024 * 1024;
/** A tRPC subscriber whose socket holds more unsent bytes than this is dropped; it resumes from its last id. @default 8388608 (8 MiB) */
export const MAX_SOCKET_BUFFER_BYTES = 8 * 1024 * 1024;
/** Live events buffered for one slow stream consumer before it is ended with "reconnect from your last id". @default 10000 */
export const MAX_BUFFERED_EVENTS = 10_000;

// ---------- shutdown ----------

/** How long SIGTERM/SIGINT (and `app.close()`) let in-flight requests and runs finish before aborting them. @default 10000 */
export const SHUTDOWN_GRACE_MS = 10_000;

// ---------- auth ----------

/** The shortest HS256 key accepted, in bytes (RFC 7518 §3.2: at least the hash size). @default 32 */
export const MIN_SECRET_BYTES = 32;
/** Clock skew forgiven on `exp` and `nbf`, in seconds. @default 30 */
export const CLOCK_TOLERANCE_S = 30;
/** Verified tokens remembered (each until its `exp`), so the HMAC check runs once per token. @default 10000 */
export const VERIFIED_TOKEN_CACHE = 10_000;

// ---------- scheduler defaults (the environment variables of the same names) ----------

export const SCHEDULER_DEFAULTS = Object.freeze({
  /** Runs at once, per instance. @default 5 */
  MAX_CONCURRENT_AGENTS: 5,
  /** Retries after the first attempt, unless the agent sets `maxRetries`. @default 3 */
  MAX_RETRIES: 3,
  /** First retry delay; then it doubles. @default 1000 */
  RETRY_BASE_DELAY_MS: 1000,
  /** Cap on one retry delay. @default 300000 (5 minutes) */
  RETRY_MAX_DELAY_MS: 300_000,
  /** A run still going after this is aborted and fails, unless the agent sets `timeoutMs`. @default 900000 (15 minutes) */
  AGENT_TIMEOUT_MS: 900_000,
  /** Runs kept per agent; older finished ones are trimmed. @default 1000 */
  RUN_HISTORY_LIMIT: 1000,
  /** How long stored events are kept for stream resume. @default 86400000 (one day) */
  EVENT_RETENTION_MS: 24 * 3_600_000,
  /** Least time between two `scheduler:status` events. @default 250 */
  STATUS_INTERVAL_MS: 250,
  /** How often an instance renews its row in the instances table (with its running count). @default 5000 */
  INSTANCE_HEARTBEAT_MS: 5_000,
  /**
   * An instance is live while its last heartbeat is at most this old. Six missed heartbeats, so a slow
   * database or a long pause does not drop a working instance; with the 5 s heartbeat a dead one leaves
   * the instances list (and the summed capacity in the status) within 35 s. Must exceed the heartbeat.
   * @default 30000
   */
  INSTANCE_LEASE_MS: 30_000,
});

/** The shortest event retention accepted: a reconnecting client may resume up to an hour later. @default 3600000 */
export const MIN_EVENT_RETENTION_MS = 3_600_000;
/** The most runs at once one instance accepts as MAX_CONCURRENT_AGENTS. @default 10000 */
export const MAX_CONCURRENCY = 10_000;

// ---------- events across instances ----------

/**
 * How often, on a database several instances share (PostgreSQL), an instance reads the events the others
 * committed, for its live subscribers. A wake-up from the database (LISTEN/NOTIFY) brings them sooner;
 * this interval is what a lost wake-up costs at worst. An indexed range read four times a second is
 * nothing to PostgreSQL. SQLite and the in-memory store have one writer and never poll. @default 250
 */
export const EVENT_POLL_MS = 250;

// ---------- several instances on one database (docs/cluster.md) ----------

/**
 * How often, on a shared database, an instance with free slots looks for due queued runs it did not
 * claim itself (a retry of a run taken back from a dead instance, a run its claimer has no slot for). One
 * indexed read a second per instance; a queued run due sooner is looked for at its time. @default 1000
 */
export const QUEUE_POLL_MS = 1000;
/**
 * How often, on a shared database, an instance reads every schedule again, in case a `schedules` signal was
 * lost: a lost signal costs at most this long (a fire it should have skipped is refused by its claim anyway,
 * whose revision no longer matches). @default 5000
 */
export const SCHEDULE_RECONCILE_MS = 5000;

// ---------- AI agents (CONTRACT §9) ----------

/** The most of a run's output kept, in bytes of UTF-8; a longer one keeps its start and is flagged `outputTruncated`. @default 262144 (256 KiB) */
export const OUTPUT_MAX_BYTES = 256 * 1024;
/** The characters of a run's output a runs list carries (`outputPreview`). @default 500 */
export const OUTPUT_PREVIEW_CHARS = 500;
