import pg from 'pg';
import { retryDelay, type RetryPolicy } from '../../core/backoff.ts';
import { systemClock, type Clock, type TimerHandle } from '../../core/clock.ts';
import { errorText } from '../../core/errors.ts';
import { silentLogger, type Logger } from '../../core/logger.ts';
import { endClient } from './pg-client.ts';
import {
  channelName,
  checkSignalPayload,
  checkSignalPrefix,
  createSignalRegistry,
  DEFAULT_SIGNAL_PREFIX,
  SIGNAL_CHANNELS,
  type SignalChannel,
  type Signals,
} from '../../core/signals.ts';

export interface PostgresSignalsOptions {
  /** The database every instance shares. */
  url: string;
  /** Channels are `${prefix}_${channel}`; give each PostgreSQL schema its own (tests do). @default 'scheduler' */
  prefix?: string;
  /** Where lost connections, retries and failing handlers are reported. @default silentLogger */
  logger?: Logger;
  /** Times the reconnect backoff and the probe. @default systemClock */
  clock?: Clock;
  /** Shown in pg_stat_activity, so an operator can tell this connection from the pool's. @default `${prefix} signals` */
  applicationName?: string;
  /** First delay before reconnecting; it doubles after each failed attempt. @default 100 */
  reconnectBaseMs?: number;
  /**
   * Cap on that delay: a restarted server is heard again within ~5 s of coming back, and a cluster of
   * instances retrying costs one connection attempt each per 5 s. @default 5000
   */
  reconnectMaxMs?: number;
  /**
   * How often the idle connection is asked `SELECT 1`. A network that silently drops packets closes no
   * socket, and TCP keepalive alone takes minutes to notice, so without a probe `connected` would stay
   * true while nothing is heard. One round trip per 10 s per instance costs nothing. @default 10000
   */
  probeIntervalMs?: number;
  /** A probe unanswered for this long drops the connection and reconnects. @default 5000 */
  probeTimeoutMs?: number;
  /** Spreads reconnects so instances that lost one server together do not return in step; 0..1. @default Math.random */
  random?: () => number;
}

/** A connection attempt that hangs (a host that swallows packets) fails after this long and is retried. */
const CONNECT_TIMEOUT_MS = 5_000;
/**
 * NOTIFYs sent but not yet answered. A stalled connection would otherwise queue them without bound; past
 * this they are dropped, which is allowed: a signal is a hint, and the owner reconciles on reconnect.
 */
const MAX_PENDING_NOTIFIES = 1_000;

/**
 * Signals over PostgreSQL LISTEN/NOTIFY on ONE dedicated connection per instance — a plain `pg.Client`,
 * never one from the pool: a pooled connection is handed to other queries and released, and LISTEN belongs
 * to a session. The same connection sends (`SELECT pg_notify`), so a signal needs no pool slot either.
 *
 * The connection's life: connect → LISTEN every channel that has a handler → up (`connected`). Any error,
 * end of the socket, failed LISTEN or unanswered probe drops it: the client is ended, and after a backoff
 * (base · 2^n, capped, jittered) a new one connects and LISTENs everything again, then `onReconnect` hooks
 * run, because whatever was notified in between is lost. Nothing here throws into the process: every
 * failure is logged and retried until close().
 */
export function createPostgresSignals(options: PostgresSignalsOptions): Signals {
  const prefix = options.prefix ?? DEFAULT_SIGNAL_PREFIX;
  checkSignalPrefix(prefix);
  const logger = options.logger ?? silentLogger;
  const clock = options.clock ?? systemClock;
  const random = options.random ?? Math.random;
  const applicationName = options.applicationName ?? `${prefix} signals`;
  const backoff: RetryPolicy = { baseDelayMs: options.reconnectBaseMs ?? 100, maxDelayMs: options.reconnectMaxMs ?? 5_000 };
  const probeIntervalMs = options.probeIntervalMs ?? 10_000;
  const probeTimeoutMs = options.probeTimeoutMs ?? 5_000;
  const registry = createSignalRegistry(logger);
  const byName = new Map(SIGNAL_CHANNELS.map((c) => [channelName(prefix, c), c]));
  // The prefix is [a-z0-9_] (checked above), so quoting needs no escaping; quoted, so LISTEN keeps the exact
  // name pg_notify uses.
  const ident = (channel: SignalChannel) => `"${channelName(prefix, channel)}"`;

  let closed = false;
  let closing: Promise<void> | null = null;
  /** The client being connected or in use; null while waiting to retry. */
  let client: pg.Client | null = null;
  /** `client` once it answers queries. */
  let live: pg.Client | null = null;
  /** `live` with its first round of LISTENs done. */
  let up = false;
  /** Channels LISTENed on `live`. */
  const listened = new Set<SignalChannel>();
  /** Failed attempts and losses since the connection was last up: the backoff exponent. */
  let failures = 0;
  /** A time without signals happened, so `onReconnect` is owed at the next `up`. */
  let outage = false;
  let retryTimer: TimerHandle | null = null;
  let probeTimer: TimerHandle | null = null;
  /** LISTEN/UNLISTEN rounds, one after another, so `listened` is only ever changed by one. */
  let syncing: Promise<void> = Promise.resolve();
  const waiters = new Set<() => void>();
  let pending = 0;
  let dropped = 0;

  function connect(): void {
    retryTimer = null;
    if (closed) return;
    // The config is the same for every attempt, so a bad URL throws here from the first (synchronous) call,
    // to whoever created the signals, and never later from a retry timer.
    const c = new pg.Client({
      connectionString: options.url,
      application_name: applicationName,
      keepAlive: true,
      connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    });
    client = c;
    // These stay attached for the client's whole life, so an error that comes after it was given up on
    // finds a listener (lost() ignores it) and never becomes an uncaught 'error' that ends the process.
    c.on('error', (err) => lost(c, err));
    c.on('end', () => lost(c, new Error('the connection ended')));
    c.on('notification', (msg) => {
      if (live !== c) return;
      const channel = byName.get(msg.channel);
      if (channel) registry.deliver(channel, msg.payload ?? '');
    });
    c.connect().then(
      async () => {
        if (client !== c) return; // closed, or lost while connecting
        live = c;
        await sync();
        if (live !== c) return; // lost during LISTEN: lost() has armed the retry
        up = true;
        failures = 0;
        armProbe(c);
        for (const wake of waiters) wake();
        waiters.clear();
        if (outage) {
          outage = false;
          logger.info('signals reconnected', { droppedWhileDown: dropped });
          dropped = 0;
          registry.reconnected();
        }
      },
      (err: unknown) => lost(c, err),
    ).catch((err: unknown) => lost(c, err)); // a logger that throws must not become an unhandled rejection
  }

  /** Drops `c` (once) and, unless closing, arms the next attempt. */
  function lost(c: pg.Client, err: unknown): void {
    if (client !== c) return;
    const wasUp = up;
    client = null;
    live = null;
    up = false;
    listened.clear();
    probeTimer?.cancel();
    probeTimer = null;
    void endClient(clock, c);
    if (closed) return;
    outage = true;
    failures++;
    // Jitter in [0.5, 1] of the delay: never more than the cap, never less than half the step.
    const delay = Math.ceil(retryDelay(failures, backoff) * (0.5 + random() / 2));
    logger.warn(wasUp ? 'signals connection lost; reconnecting' : 'signals connection failed; retrying', {
      error: errorText(err),
      attempt: failures,
      retryInMs: delay,
    });
    retryTimer = clock.setTimer(connect, delay);
  }

  /** Brings the LISTENed channels in line with the channels that have handlers, on the live client. */
  function sync(): Promise<void> {
    syncing = syncing.then(syncRounds);
    return syncing;
  }

  async function syncRounds(): Promise<void> {
    for (;;) {
      const c = live;
      if (!c || closed) return;
      const want = registry.channels();
      const add = want.filter((ch) => !listened.has(ch));
      const remove = [...listened].filter((ch) => !want.includes(ch));
      if (add.length === 0 && remove.length === 0) return;
      const sql = [...add.map((ch) => `LISTEN ${ident(ch)}`), ...remove.map((ch) => `UNLISTEN ${ident(ch)}`)].join('; ');
      try {
        await c.query(sql);
      } catch (err) {
        // A channel that could not be LISTENed would stay deaf on this connection: start over on a new one.
        lost(c, err);
        return;
      }
      if (live !== c) return;
      for (const ch of add) listened.add(ch);
      for (const ch of remove) listened.delete(ch);
    }
  }

  function armProbe(c: pg.Client): void {
    probeTimer = clock.setTimer(() => {
      if (live !== c) return;
      const deadline = clock.setTimer(() => lost(c, new Error(`no answer to a probe within ${probeTimeoutMs} ms`)), probeTimeoutMs);
      probeTimer = deadline;
      c.query('SELECT 1').then(
        () => {
          deadline.cancel();
          if (live === c) armProbe(c);
        },
        (err: unknown) => {
          deadline.cancel();
          lost(c, err);
        },
      );
    }, probeIntervalMs);
  }

  const inSync = () => {
    const want = registry.channels();
    return want.length === listened.size && want.every((ch) => listened.has(ch));
  };

  async function ready(): Promise<void> {
    for (;;) {
      if (closed) return;
      if (up) {
        await sync();
        if (closed || (up && inSync())) return;
      } else {
        await new Promise<void>((resolve) => waiters.add(resolve));
      }
    }
  }

  function close(): Promise<void> {
    if (closing) return closing;
    closed = true;
    retryTimer?.cancel();
    probeTimer?.cancel();
    retryTimer = probeTimer = null;
    for (const wake of waiters) wake();
    waiters.clear();
    registry.clear();
    const c = client;
    client = live = null;
    up = false;
    closing = (async () => {
      if (c) await endClient(clock, c);
      // Queries still queued on `c` were failed by end(); let their handlers finish before resolving.
      await syncing;
    })();
    return closing;
  }

  connect();

  return {
    notify(channel, payload) {
      checkSignalPayload(channel, payload);
      if (closed) return;
      const c = live;
      if (!c || pending >= MAX_PENDING_NOTIFIES) {
        dropped++;
        return;
      }
      pending++;
      c.query('SELECT pg_notify($1, $2)', [channelName(prefix, channel), payload]).then(
        () => {
          pending--;
        },
        (err: unknown) => {
          pending--;
          dropped++;
          // A lost connection is reported once by lost(); a NOTIFY refused on a live one is worth its own line.
          if (live === c) logger.warn('signal not sent', { channel, error: errorText(err) });
        },
      );
    },
    listen(channel, handler) {
      if (closed) return () => {};
      const { first, remove } = registry.add(channel, handler);
      if (first) void sync();
      return () => {
        if (remove()) void sync();
      };
    },
    onReconnect: (hook) => registry.onReconnect(hook),
    ready,
    get connected() {
      return up;
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}
