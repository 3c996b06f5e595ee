import { DomainError } from './errors.ts';
import { silentLogger, type Logger } from './logger.ts';

/**
 * Signals: short "something changed, go and look" messages between the instances that share one database
 * (README, "Running several instances"). On PostgreSQL they are LISTEN/NOTIFY on one dedicated connection
 * (storage/dialects/postgres-signals.ts); on SQLite and the in-memory store the one instance is the only
 * listener, so they stay in the process (`createLocalSignals`).
 *
 * A signal is a hint, never the truth: it is lost while a connection is down, and it says only where to
 * look. Whatever it announces is in the database, so an owner reads the database when a signal arrives and
 * again from `onReconnect`, and nothing may depend on a signal arriving.
 */

/** The channels, one per kind of change. A fixed set, so a typo is a type error rather than a silent channel. */
export const SIGNAL_CHANNELS = ['events', 'schedules', 'cancel'] as const;
export type SignalChannel = (typeof SIGNAL_CHANNELS)[number];

/** Channels are `${prefix}_${channel}`: `scheduler_events`, `scheduler_schedules`, `scheduler_cancel`. */
export const DEFAULT_SIGNAL_PREFIX = 'scheduler';

/**
 * Largest payload, in bytes of UTF-8. PostgreSQL refuses a NOTIFY payload of 8000 bytes or more (in its
 * default build); the in-process signals keep the same bound so a payload that would fail on PostgreSQL
 * fails on SQLite too, in development, rather than in production. Payloads are meant to be ids, not data.
 */
export const MAX_SIGNAL_PAYLOAD_BYTES = 7999;

/**
 * PostgreSQL truncates a LISTEN channel (an identifier) to 63 bytes without failing, while `pg_notify`
 * refuses a longer one, so a long prefix would listen on one name and notify another: refused up front.
 */
const MAX_CHANNEL_NAME_BYTES = 63;

export type SignalHandler = (payload: string) => void;

export interface Signals extends AsyncDisposable {
  /**
   * Sends `payload` to every listener of `channel` on every instance, this one included (so an instance
   * that reacts to its own signals needs no second path). Fire and forget: while disconnected the signal is
   * dropped. Throws a PAYLOAD_TOO_LARGE DomainError for a payload over MAX_SIGNAL_PAYLOAD_BYTES, and a
   * BAD_REQUEST one for a payload holding NUL (PostgreSQL text cannot); after close() it does nothing.
   */
  notify(channel: SignalChannel, payload: string): void;
  /**
   * Calls `handler` for each signal on `channel`, in the order they were sent. A handler that throws is
   * logged and the others still run. Returns a function that stops this handler (calling it twice is fine).
   * A handler added while connected hears signals sent after `ready()` resolves.
   */
  listen(channel: SignalChannel, handler: SignalHandler): () => void;
  /**
   * Calls `hook` each time the signals are back after a time without them (a lost connection, or a first
   * connection that failed before it succeeded): signals sent in between are gone, so the owner re-reads
   * what it keeps in step. Not called for a first connection that succeeds at once: an owner that awaits
   * `ready()` before reading its state has missed nothing. Returns a function that removes the hook.
   */
  onReconnect(hook: () => void): () => void;
  /** Resolves once connected with every channel that has a handler listened to (at once when closed). */
  ready(): Promise<void>;
  /**
   * True while signals flow: connected, and every channel that had a handler when the connection came up is
   * listened to (a channel whose first handler was added a moment ago may still wait for its LISTEN: see
   * `ready()`). False while reconnecting and after close().
   */
  readonly connected: boolean;
  /** Stops listening, ends the connection and cancels every timer; idempotent. */
  close(): Promise<void>;
}

/** Throws a validation error naming the field, the expected and the actual value for a bad prefix. */
export function checkSignalPrefix(prefix: string): void {
  if (!/^[a-z_][a-z0-9_]*$/.test(prefix)) {
    throw new DomainError('BAD_REQUEST', `Expected \`prefix\` to be lower-case letters, digits and _ (not starting with a digit), got \`${prefix}\``);
  }
  const longest = Math.max(...SIGNAL_CHANNELS.map((c) => c.length));
  if (prefix.length + 1 + longest > MAX_CHANNEL_NAME_BYTES) {
    throw new DomainError('BAD_REQUEST', `Expected \`prefix\` to be at most ${MAX_CHANNEL_NAME_BYTES - 1 - longest} characters, got ${prefix.length} (\`${prefix}\`)`);
  }
}

/** The database-wide name of a channel. Give each PostgreSQL schema its own prefix so they never hear each other. */
export function channelName(prefix: string, channel: SignalChannel): string {
  return `${prefix}_${channel}`;
}

/** Bytes of `s` in UTF-8, without encoding it (a lone surrogate counts 3, as the U+FFFD it becomes). */
export function utf8Length(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      n += 4;
      i++;
    } else n += 3;
  }
  return n;
}

/** Refuses a payload PostgreSQL would refuse, with the same error on every implementation. */
export function checkSignalPayload(channel: SignalChannel, payload: string): void {
  // No UTF-16 unit takes more than 3 bytes of UTF-8, so short payloads skip the count.
  if (payload.length * 3 > MAX_SIGNAL_PAYLOAD_BYTES) {
    const bytes = utf8Length(payload);
    if (bytes > MAX_SIGNAL_PAYLOAD_BYTES) {
      throw new DomainError('PAYLOAD_TOO_LARGE', `Expected a signal payload on \`${channel}\` of at most ${MAX_SIGNAL_PAYLOAD_BYTES} bytes of UTF-8, got ${bytes}: send ids, not data`);
    }
  }
  if (payload.includes('\0')) {
    throw new DomainError('BAD_REQUEST', `Expected a signal payload on \`${channel}\` without NUL characters, got one at index ${payload.indexOf('\0')}`);
  }
}

/** The handlers of each channel, shared by both implementations. */
export interface SignalRegistry {
  /** Adds a handler; `first` is true when the channel had none (so a connection must start listening). */
  add(channel: SignalChannel, handler: SignalHandler): { remove: () => boolean; first: boolean };
  /** Channels with at least one handler. */
  channels(): SignalChannel[];
  deliver(channel: SignalChannel, payload: string): void;
  onReconnect(hook: () => void): () => void;
  reconnected(): void;
  clear(): void;
}

export function createSignalRegistry(logger: Logger): SignalRegistry {
  const handlers = new Map<SignalChannel, Set<{ handler: SignalHandler }>>();
  const hooks = new Set<{ hook: () => void }>();
  return {
    add(channel, handler) {
      if (!SIGNAL_CHANNELS.includes(channel)) {
        throw new DomainError('BAD_REQUEST', `Expected \`channel\` to be one of ${SIGNAL_CHANNELS.join(', ')}, got \`${String(channel)}\``);
      }
      let set = handlers.get(channel);
      const first = !set;
      if (!set) handlers.set(channel, (set = new Set()));
      // A wrapper per registration, so the same function added twice is two handlers removed one at a time.
      const entry = { handler };
      set.add(entry);
      const owner = set;
      return {
        first,
        /** True when this removed the channel's last handler. */
        remove() {
          if (!owner.delete(entry)) return false;
          if (owner.size > 0 || handlers.get(channel) !== owner) return false;
          handlers.delete(channel);
          return true;
        },
      };
    },
    channels: () => [...handlers.keys()],
    deliver(channel, payload) {
      const set = handlers.get(channel);
      if (!set) return;
      // A snapshot: a handler that adds or removes handlers changes the next delivery, not this one.
      for (const { handler } of [...set]) {
        try {
          handler(payload);
        } catch (err) {
          logger.error('signal handler failed', { channel, error: err instanceof Error ? err.message : String(err) });
        }
      }
    },
    onReconnect(hook) {
      const entry = { hook };
      hooks.add(entry);
      return () => void hooks.delete(entry);
    },
    reconnected() {
      for (const { hook } of [...hooks]) {
        try {
          hook();
        } catch (err) {
          logger.error('signals reconnect hook failed', { error: err instanceof Error ? err.message : String(err) });
        }
      }
    },
    clear() {
      handlers.clear();
      hooks.clear();
    },
  };
}

export interface LocalSignalsOptions {
  /** Checked as on PostgreSQL, so a configuration that works here works there. @default 'scheduler' */
  prefix?: string;
  /** Where a failing handler is reported. @default silentLogger */
  logger?: Logger;
}

/**
 * Signals inside one process, for SQLite and the in-memory store, where this instance is the database's
 * only one. Always connected until closed, so `onReconnect` never fires. Delivery is on a microtask, as a
 * NOTIFY arrives later than it is sent, so a handler never runs inside the code that notified.
 */
export function createLocalSignals(options: LocalSignalsOptions = {}): Signals {
  checkSignalPrefix(options.prefix ?? DEFAULT_SIGNAL_PREFIX);
  const registry = createSignalRegistry(options.logger ?? silentLogger);
  let closed = false;
  const close = async () => {
    closed = true;
    registry.clear();
  };
  return {
    notify(channel, payload) {
      checkSignalPayload(channel, payload);
      if (closed) return;
      queueMicrotask(() => {
        if (!closed) registry.deliver(channel, payload);
      });
    },
    listen(channel, handler) {
      if (closed) return () => {};
      const { remove } = registry.add(channel, handler);
      return () => void remove();
    },
    onReconnect: (hook) => registry.onReconnect(hook),
    ready: async () => {},
    get connected() {
      return !closed;
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}
