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

// ---------- HTTP connections (the environment variables of the same names) ----------

export const HTTP_DEFAULTS = Object.freeze({
  /**
   * Time a client has to send a request's headers (at most HTTP_MAX_HEADER_BYTES), from its first byte or from
   * the connection's start. Any real link sends them in well under a second; 10 s forgives a bad mobile link,
   * and a client that trickles them (slowloris) holds a socket 10 s instead of Node's 60. @default 10000
   */
  HTTP_HEADERS_TIMEOUT_MS: 10_000,
  /** Time a client has to send a whole request, headers and body: a 1 MiB body at 35 KB/s. At least the headers timeout. @default 30000 */
  HTTP_REQUEST_TIMEOUT_MS: 30_000,
  /**
   * An idle keep-alive connection is closed after this. Node's own figure, above the 4 s that undici and browsers
   * reuse a connection for; behind a proxy that keeps idle upstream connections longer, set it above the proxy's
   * idle timeout, or the proxy may send a request on a connection the server is closing. @default 5000
   */
  HTTP_KEEP_ALIVE_TIMEOUT_MS: 5_000,
  /**
   * Open connections (HTTP, WebSocket and Socket.IO alike); a new one past this is closed at once. Each costs a
   * file descriptor and a few KiB; ten thousand is far more clients than one scheduler serves. @default 10000
   */
  HTTP_MAX_CONNECTIONS: 10_000,
  /** Largest request head (request line and headers); past it `431`. Node's own figure: a JWT with many claims fits in a few KiB. @default 16384 */
  HTTP_MAX_HEADER_BYTES: 16 * 1024,
});
/**
 * How often the server looks for requests past their header or request timeout: a timeout is noticed at most this
 * late (Node's default, 30 s, is what turned a 60 s timeout into 90 s). A pass walks only requests in progress. A
 * shorter timeout is checked at least four times per timeout. @default 1000
 */
export const HTTP_TIMEOUT_CHECK_MS = 1000;
/**
 * A connection refused at the HTTP level (408, 431, 400) gets its answer and a FIN; it is destroyed when the client
 * closes its side, or after this if it does not: long enough to read a short answer on any link, short enough that
 * a client ignoring the FIN holds nothing. @default 1000
 */
export const REFUSED_CONNECTION_LINGER_MS = 1000;
/** How long a browser may cache a CORS preflight answer (Chromium caps it at 7200 s). @default 600 */
export const CORS_MAX_AGE_S = 600;

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
/** Longest a token may live: `exp` further than this from its `iat` (or from now) is refused (JWT_MAX_TTL, seconds). @default 2592000 (30 days) */
export const JWT_MAX_TTL_S = 30 * 24 * 3600;
/** Time a Socket.IO connection or a tRPC WebSocket has to present a valid token; then it is closed (Socket.IO: its session ends; tRPC: close code 4401) (SOCKET_AUTH_GRACE_MS). @default 5000 */
export const SOCKET_AUTH_GRACE_MS = 5000;
/** Agent subscriptions one Socket.IO socket, or subscriptions one tRPC WebSocket, may hold at once (MAX_SUBSCRIPTIONS_PER_SOCKET); one more is refused. @default 100 */
export const MAX_SUBSCRIPTIONS_PER_SOCKET = 100;
/** Calls in one tRPC batch, over HTTP or in one WebSocket message (TRPC_MAX_BATCH); a bigger batch is a 400. @default 50 */
export const TRPC_MAX_BATCH = 50;

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

// ---------- what one owner may ask for (README "Errors and limits") ----------

/**
 * Agents one owner (a JWT `sub`) may hold; creating one more is a `409` until one is deleted. Ten times what
 * a team runs, far under what the scheduler carries (100,000 schedules), so one owner cannot fill it alone.
 * Env MAX_AGENTS_PER_OWNER. @default 10000
 */
export const MAX_AGENTS_PER_OWNER = 10_000;
/**
 * Manual runs (`POST /api/agents/:id/run`) one agent may be asked for in any 60 s, counted in the runs table
 * (so on several instances together); one more is a `429`. One a second on average: a button pressed by
 * people, not a loop. Skipped ones count: each is a stored run and its events. Env MANUAL_RUNS_PER_MINUTE. @default 60
 */
export const MANUAL_RUNS_PER_MINUTE = 60;
/** Slots one ledger call may cover (`GET /api/agents/:id/ledger`); a larger range is a 400 naming `query.to`. One call for 1,000 takes ~40 ms. @default 1000 */
export const LEDGER_MAX_SLOTS = 1000;
/** How long a manual run's `Idempotency-Key` answers the same run (CONTRACT §11): 24 h, as Stripe and the IETF draft keep them. */
export const IDEMPOTENCY_KEY_TTL_MS = 24 * 60 * 60_000;
/**
 * A key reserved this long ago whose run was never recorded belongs to a request that stopped (its process died
 * between the reservation and the run): the next request with the key takes it over. A run is made in milliseconds.
 */
export const IDEMPOTENCY_KEY_STALE_MS = 60_000;
/**
 * How long a second request with a key waits for the first one's run (it polls, 10 ms doubling to 200 ms), before
 * answering `409` "still in progress": the first request is making the run right then.
 */
export const IDEMPOTENCY_WAIT_MS = 5_000;
/**
 * Missed fires a restart counts one by one per schedule (croner ~50 µs each); past it the miss is recorded
 * as "missed 1000+ fire(s)", and the catch-up is still for the latest missed slot. @default 1000
 */
export const MISSED_FIRES_COUNTED = 1000;

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

// ---------- progress events ----------

/**
 * Progress events one run sends as they come; past this its updates are merged and sent at most once per
 * PROGRESS_COALESCE_MS, so one run cannot store tens of thousands of events (an llm run at the 100 ms throttle
 * reaches it after 100 s). @default 1000
 */
export const MAX_PROGRESS_EVENTS_PER_RUN = 1000;
/** How often a run past MAX_PROGRESS_EVENTS_PER_RUN sends its merged progress. @default 1000 */
export const PROGRESS_COALESCE_MS = 1000;

// ---------- AI agents (CONTRACT §9) ----------

/** The most of a run's output kept, in bytes of UTF-8; a longer one keeps its start and is flagged `outputTruncated`. @default 262144 (256 KiB) */
export const OUTPUT_MAX_BYTES = 256 * 1024;
/** The characters of a run's output a runs list carries (`outputPreview`). @default 500 */
export const OUTPUT_PREVIEW_CHARS = 500;

// ---------- outbound calls: the webhook and llm handlers (README "Security") ----------

/**
 * Largest answer a webhook or llm server may send as one piece: an `application/json` answer, one NDJSON
 * line, one server-sent event. 256 KiB of output JSON-escaped at its worst (`\uXXXX`, 6 bytes a character) is
 * 1.5 MiB; 4 MiB leaves room for the other fields while one answer's memory stays bounded (a 40 MB line
 * grew the process by 400 MB). WEBHOOK_MAX_ANSWER_BYTES and LLM_MAX_ANSWER_BYTES. @default 4194304 (4 MiB)
 */
export const MAX_ANSWER_BYTES = 4 * 1024 * 1024;
/**
 * The most characters of an error message a remote server sends (a webhook's `{ "error" }` line, an llm
 * server's `error.message`) that a run keeps: longer ones are cut and end in `…`. A run's error is stored,
 * broadcast to every subscriber and shown in lists; 1,000 characters hold any real reason. @default 1000
 */
export const REMOTE_ERROR_MAX_CHARS = 1000;
/** Headers one webhook or llm agent's `config.headers` may set. @default 50 */
export const MAX_CONFIG_HEADERS = 50;
/** Longest value of one of those headers, in characters (a long bearer token or cookie fits). @default 8192 */
export const MAX_CONFIG_HEADER_CHARS = 8192;

// ---------- metrics ----------

/**
 * Distinct model names `/metrics` labels its llm series with; usage of any further model is counted under
 * `model="other"`. Model names come from agents' configs and handlers, so without a bound a caller could grow
 * the scrape (and Prometheus's series) without end; fifty is more models than one deployment uses. @default 50
 */
export const MAX_METRIC_MODELS = 50;
/** Longest model name kept as a label value; a longer one is cut to this many characters. @default 128 */
export const MAX_METRIC_MODEL_CHARS = 128;

/**
 * Missed slots a catch-up with `{ policy: "all" }` runs at most (CONTRACT §11): the latest ones in its
 * window, oldest first, one after another. A schedule every minute down a day missed 1,440; running them
 * all would hold the agent for hours, so older ones stay missed (the ledger says so). @default 100
 */
export const CATCH_UP_ALL_MAX = 100;
/** The longest catch-up window a schedule takes (`catchUp.window`): a year and a day, past any schedule's yearly slot. @default 31622400000 (366 d) */
export const CATCH_UP_MAX_WINDOW_MS = 366 * 24 * 3_600_000;
/** Most slots one backfill queues (`POST …/backfill`); more is a 400 naming `to`. The ledger's figure: a backfill can be checked with one ledger call. @default 1000 */
export const BACKFILL_MAX_SLOTS = 1000;
