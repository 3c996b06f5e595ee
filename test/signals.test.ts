import net from 'node:net';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createManualClock } from '../src/core/clock.ts';
import { DomainError } from '../src/core/errors.ts';
import type { Logger } from '../src/core/logger.ts';
import { createLocalSignals, MAX_SIGNAL_PAYLOAD_BYTES, SIGNAL_CHANNELS, type SignalChannel, type Signals } from '../src/core/signals.ts';
import { createPostgresSignals, type PostgresSignalsOptions } from '../src/storage/dialects/postgres-signals.ts';

/**
 * Signals (README, "Running several instances"): the in-process implementation and the PostgreSQL one pass
 * the same contract; PostgreSQL also proves two instances hear each other and that a lost connection comes
 * back, re-listens and says so. PostgreSQL runs when TEST_POSTGRES_URL is set, which .ci/run always does.
 * Every wait is on an event (a signal heard, a line logged) with a deadline that fails the test with a reason.
 */
const pgUrl = process.env['TEST_POSTGRES_URL'];

const WAIT_MS = 10_000;

/** Things that arrive one by one; take() gives the next one not yet taken, already here or still to come. */
function queue<T>(what: string) {
  const all: T[] = [];
  const items: T[] = [];
  const waiters: ((item: T) => void)[] = [];
  return {
    /** Everything pushed, taken or not. */
    items: all,
    push(item: T) {
      all.push(item);
      const w = waiters.shift();
      if (w) w(item);
      else items.push(item);
    },
    take(): Promise<T> {
      if (items.length > 0) return Promise.resolve(items.shift()!);
      return new Promise<T>((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.splice(waiters.indexOf(done), 1);
          reject(new Error(`timed out waiting for ${what}`));
        }, WAIT_MS);
        const done = (item: T) => {
          clearTimeout(timer);
          resolve(item);
        };
        waiters.push(done);
      });
    },
  };
}

/** `promise`, or a failure naming what never came. */
function within<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), WAIT_MS);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

/** Everything `signals` hears on `channel`: `all` in order, `next()` to wait for the next one. */
function inbox(signals: Signals, channel: SignalChannel) {
  const q = queue<string>(`a signal on ${channel}`);
  const off = signals.listen(channel, (payload) => q.push(payload));
  return { all: q.items, next: () => q.take(), off };
}

interface LogEntry {
  level: 'info' | 'warn' | 'error';
  message: string;
  fields: Record<string, unknown>;
  /** What `observe` returned when the line was logged. */
  observed: unknown;
}

function logSpy() {
  const byLevel = { info: queue<LogEntry>('an info line'), warn: queue<LogEntry>('a warning'), error: queue<LogEntry>('an error line') };
  const spy = {
    observe: (): unknown => undefined,
    take: (level: LogEntry['level']) => byLevel[level].take(),
    logger: {} as Logger,
  };
  const write = (level: LogEntry['level']) => (message: string, fields: Record<string, unknown> = {}) =>
    byLevel[level].push({ level, message, fields, observed: spy.observe() });
  spy.logger = { info: write('info'), warn: write('warn'), error: write('error') };
  return spy;
}

const uniquePrefix = () => `t_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 8)}`;

/** A listener and a sender on one database. In process there is one instance, so it is both. */
interface Pair extends AsyncDisposable {
  listener: Signals;
  sender: Signals;
}
type Open = (options?: { logger?: Logger }) => Promise<Pair>;

const openLocal: Open = async ({ logger } = {}) => {
  const s = createLocalSignals({ prefix: uniquePrefix(), logger });
  return { listener: s, sender: s, [Symbol.asyncDispose]: () => s.close() };
};

const openPostgres: Open = async ({ logger } = {}) => {
  const prefix = uniquePrefix();
  const listener = createPostgresSignals({ url: pgUrl!, prefix, logger, applicationName: `${prefix} listener` });
  const sender = createPostgresSignals({ url: pgUrl!, prefix, applicationName: `${prefix} sender` });
  await Promise.all([listener.ready(), sender.ready()]);
  return {
    listener,
    sender,
    [Symbol.asyncDispose]: async () => {
      await Promise.all([listener.close(), sender.close()]);
    },
  };
};

const implementations: [string, Open][] = [['in-process', openLocal]];
if (pgUrl) implementations.push(['postgres', openPostgres]);
else {
  describe('signals on postgres', () => {
    it.skip('skipped: TEST_POSTGRES_URL is not set (.ci/run sets it)', () => {});
  });
  console.warn('signals on postgres skipped: TEST_POSTGRES_URL is not set');
}

describe.each(implementations)('signals contract: %s', (name, open) => {
  it('a listener hears a signal with its payload intact', async () => {
    await using pair = await open();
    const heard = inbox(pair.listener, 'events');
    await pair.listener.ready();
    expect(pair.listener.connected).toBe(true);
    pair.sender.notify('events', '{"id":42,"name":"é🙂"}');
    expect(await heard.next()).toBe('{"id":42,"name":"é🙂"}');
  });

  it('a listener added later hears, and the first one keeps hearing', async () => {
    await using pair = await open();
    const events = inbox(pair.listener, 'events');
    await pair.listener.ready();
    pair.sender.notify('events', 'one');
    expect(await events.next()).toBe('one');

    const cancels = inbox(pair.listener, 'cancel');
    await pair.listener.ready();
    pair.sender.notify('cancel', 'run-1');
    pair.sender.notify('events', 'two');
    expect(await cancels.next()).toBe('run-1');
    expect(await events.next()).toBe('two');
  });

  it('signals arrive in the order they were sent', async () => {
    await using pair = await open();
    const heard = inbox(pair.listener, 'schedules');
    await pair.listener.ready();
    const sent = Array.from({ length: 50 }, (_, i) => `s${i}`);
    for (const p of sent) pair.sender.notify('schedules', p);
    for (const p of sent) expect(await heard.next()).toBe(p);
  });

  it('unlisten stops only its own handler, and a channel with none left falls silent', async () => {
    await using pair = await open();
    const first = inbox(pair.listener, 'events');
    const second = inbox(pair.listener, 'events');
    await pair.listener.ready();
    first.off();
    first.off(); // twice is harmless and removes nothing else
    pair.sender.notify('events', 'x');
    expect(await second.next()).toBe('x');
    expect(first.all).toEqual([]);

    second.off();
    const marker = inbox(pair.listener, 'cancel');
    await pair.listener.ready();
    // Sent in this order by one sender, so when the marker arrives anything on `events` would have too.
    pair.sender.notify('events', 'y');
    pair.sender.notify('cancel', 'marker');
    expect(await marker.next()).toBe('marker');
    expect(first.all).toEqual([]);
    expect(second.all).toEqual(['x']);
  });

  it('a handler that throws is logged and the other handlers still hear', async () => {
    const log = logSpy();
    await using pair = await open({ logger: log.logger });
    pair.listener.listen('events', () => {
      throw new Error('handler bug');
    });
    const heard = inbox(pair.listener, 'events');
    await pair.listener.ready();
    pair.sender.notify('events', 'p');
    expect(await heard.next()).toBe('p');
    const line = await log.take('error');
    expect(line.message).toBe('signal handler failed');
    expect(line.fields).toMatchObject({ channel: 'events', error: 'handler bug' });
  });

  it(`payloads up to ${MAX_SIGNAL_PAYLOAD_BYTES} bytes of UTF-8 arrive; longer ones and NUL are refused by name`, async () => {
    await using pair = await open();
    const heard = inbox(pair.listener, 'events');
    await pair.listener.ready();
    const ascii = 'a'.repeat(MAX_SIGNAL_PAYLOAD_BYTES);
    const wide = '🙂'.repeat(1999) + 'abc'; // 4 · 1999 + 3 = 7999 bytes
    pair.sender.notify('events', ascii);
    pair.sender.notify('events', wide);
    expect(await heard.next()).toBe(ascii);
    expect(await heard.next()).toBe(wide);

    const refused = (payload: string) => {
      try {
        pair.sender.notify('events', payload);
      } catch (err) {
        return err;
      }
      throw new Error('expected notify to refuse the payload');
    };
    const tooLong = refused('a'.repeat(MAX_SIGNAL_PAYLOAD_BYTES + 1));
    expect(tooLong).toBeInstanceOf(DomainError);
    expect(tooLong).toMatchObject({ code: 'PAYLOAD_TOO_LARGE' });
    expect((tooLong as Error).message).toBe('Expected a signal payload on `events` of at most 7999 bytes of UTF-8, got 8000: send ids, not data');
    // 4000 characters, but 8000 bytes: the bound is on bytes, as PostgreSQL counts them.
    expect(refused('é'.repeat(4000))).toMatchObject({ code: 'PAYLOAD_TOO_LARGE', message: expect.stringContaining('got 8000') });
    expect(refused('a\0b')).toMatchObject({ code: 'BAD_REQUEST', message: expect.stringContaining('NUL') });

    // Nothing refused was sent: the next signal is the next one heard.
    pair.sender.notify('events', 'after');
    expect(await heard.next()).toBe('after');
  });

  it('a prefix PostgreSQL would mangle is refused, naming the field and the value', async () => {
    const make = (prefix: string) => (name === 'postgres' ? createPostgresSignals({ url: pgUrl!, prefix }) : createLocalSignals({ prefix }));
    expect(() => make('Bad-Prefix')).toThrow('Expected `prefix` to be lower-case letters, digits and _ (not starting with a digit), got `Bad-Prefix`');
    expect(() => make('p'.repeat(60))).toThrow('Expected `prefix` to be at most 53 characters, got 60');
  });

  it('close() is idempotent and leaves notify, listen and ready harmless', async () => {
    const pair = await open();
    const heard = inbox(pair.listener, 'events');
    await Promise.all([pair.listener.close(), pair.listener.close()]);
    await pair[Symbol.asyncDispose]();
    expect(pair.listener.connected).toBe(false);
    await pair.listener.ready(); // resolves at once when closed
    expect(() => pair.listener.notify('events', 'late')).not.toThrow();
    const off = pair.listener.listen('events', () => {});
    off();
    expect(heard.all).toEqual([]);
  });
});

// ---------- PostgreSQL only: several instances, lost connections ----------

/**
 * A TCP proxy in front of PostgreSQL, so a test can do to the connection what a network or a restart does:
 * `cut()` resets every connection (a server restart), `refuse` turns new ones away (a server still down),
 * `freeze()` stops every byte on the open ones without closing anything (a network that silently drops).
 */
async function startProxy(target: URL) {
  const pairs = new Set<{ client: net.Socket; upstream: net.Socket; end: () => void }>();
  const server = net.createServer((client) => {
    if (proxy.refuse) {
      client.destroy();
      return;
    }
    const upstream = net.connect(Number(target.port || 5432), target.hostname);
    const pair = {
      client,
      upstream,
      end: () => {
        client.destroy();
        upstream.destroy();
        if (pairs.delete(pair)) proxy.closed.push(pair);
      },
    };
    pairs.add(pair);
    client.pipe(upstream);
    upstream.pipe(client);
    for (const s of [client, upstream]) {
      s.on('error', pair.end);
      s.on('close', pair.end);
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = new URL(target.toString());
  url.hostname = '127.0.0.1';
  url.port = String((server.address() as net.AddressInfo).port);
  const proxy = {
    url: url.toString(),
    refuse: false,
    /** Connections open through the proxy now. */
    open: () => pairs.size,
    /** Each connection as it closes. */
    closed: queue<unknown>('a proxied connection to close'),
    cut: () => {
      for (const p of [...pairs]) p.end();
    },
    freeze: () => {
      for (const p of pairs) {
        p.client.unpipe(p.upstream);
        p.upstream.unpipe(p.client);
        p.client.pause();
        p.upstream.pause();
      }
    },
    async [Symbol.asyncDispose]() {
      proxy.cut();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  return proxy;
}

describe.runIf(pgUrl)('signals on postgres', () => {
  let admin: pg.Client;
  beforeAll(async () => {
    admin = new pg.Client(pgUrl);
    await admin.connect();
  });
  afterAll(async () => {
    await admin?.end();
  });

  const withDefaults = (o: Partial<PostgresSignalsOptions> & { prefix: string }): PostgresSignalsOptions => ({ url: pgUrl!, ...o });

  it('two instances hear each other, and each hears itself', async () => {
    await using pair = await openPostgres();
    const a = pair.listener;
    const b = pair.sender;
    const atA = inbox(a, 'events');
    const atB = inbox(b, 'events');
    await Promise.all([a.ready(), b.ready()]);
    a.notify('events', 'from-a');
    expect(await atB.next()).toBe('from-a');
    expect(await atA.next()).toBe('from-a');
    b.notify('events', 'from-b');
    expect(await atA.next()).toBe('from-b');
    expect(await atB.next()).toBe('from-b');
  });

  it('instances with different prefixes (one per schema) do not hear each other', async () => {
    const one = uniquePrefix();
    const two = uniquePrefix();
    await using a = createPostgresSignals(withDefaults({ prefix: one }));
    await using b = createPostgresSignals(withDefaults({ prefix: two }));
    const atA = inbox(a, 'events');
    const atB = inbox(b, 'events');
    await Promise.all([a.ready(), b.ready()]);
    // One session sends both, in order: by the time b hears its own, it would have heard a's.
    await admin.query('SELECT pg_notify($1, $2), pg_notify($3, $4)', [`${one}_events`, 'for-a', `${two}_events`, 'for-b']);
    expect(await atB.next()).toBe('for-b');
    expect(await atA.next()).toBe('for-a');
    expect(atB.all).toEqual(['for-b']);
    expect(atA.all).toEqual(['for-a']);
  });

  it('after pg_terminate_backend it reconnects, re-listens every channel and calls onReconnect', async () => {
    const prefix = uniquePrefix();
    const log = logSpy();
    await using listener = createPostgresSignals(withDefaults({ prefix, logger: log.logger, applicationName: `${prefix} listener` }));
    await using sender = createPostgresSignals(withDefaults({ prefix, applicationName: `${prefix} sender` }));
    log.observe = () => listener.connected;
    const events = inbox(listener, 'events');
    const cancels = inbox(listener, 'cancel');
    await Promise.all([listener.ready(), sender.ready()]);
    let reconnects = 0;
    const reconnected = new Promise<void>((resolve) =>
      listener.onReconnect(() => {
        reconnects++;
        resolve();
      }),
    );

    const { rows } = await admin.query('SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE application_name = $1', [`${prefix} listener`]);
    expect(rows).toEqual([{ ok: true }]);
    const loss = await log.take('warn');
    expect(loss.message).toBe('signals connection lost; reconnecting');
    expect(loss.fields).toMatchObject({ attempt: 1 });
    expect(loss.observed).toBe(false); // `connected` was already false when the loss was reported

    await within(reconnected, 'onReconnect');
    expect(listener.connected).toBe(true);
    expect((await log.take('info')).message).toBe('signals reconnected');
    sender.notify('events', 'after-events');
    sender.notify('cancel', 'after-cancel');
    expect(await events.next()).toBe('after-events');
    expect(await cancels.next()).toBe('after-cancel');
    expect(reconnects).toBe(1);
  });

  it('while the server is down it retries 100 ms doubling to 5 s, then re-listens and calls onReconnect', async () => {
    const clock = createManualClock(0);
    const log = logSpy();
    await using proxy = await startProxy(new URL(pgUrl!));
    await using s = createPostgresSignals(withDefaults({ url: proxy.url, prefix: uniquePrefix(), clock, logger: log.logger, random: () => 1 }));
    const heard = inbox(s, 'events');
    await s.ready();
    const reconnected = new Promise<void>((resolve) => s.onReconnect(resolve));

    proxy.refuse = true;
    proxy.cut();
    const loss = await log.take('warn');
    expect(loss.message).toBe('signals connection lost; reconnecting');
    expect(s.connected).toBe(false);
    const delays = [loss.fields['retryInMs'] as number];
    for (let i = 0; i < 7; i++) {
      clock.advance(delays.at(-1)!);
      const failed = await log.take('warn');
      expect(failed.message).toBe('signals connection failed; retrying');
      delays.push(failed.fields['retryInMs'] as number);
    }
    expect(delays).toEqual([100, 200, 400, 800, 1600, 3200, 5000, 5000]);
    expect(s.connected).toBe(false);

    proxy.refuse = false;
    clock.advance(5000);
    await within(reconnected, 'onReconnect');
    expect(s.connected).toBe(true);
    s.notify('events', 'after');
    expect(await heard.next()).toBe('after');
  });

  it('a network that silently stops answering is noticed by the probe, and the connection replaced', async () => {
    const clock = createManualClock(0);
    const log = logSpy();
    await using proxy = await startProxy(new URL(pgUrl!));
    await using s = createPostgresSignals(withDefaults({ url: proxy.url, prefix: uniquePrefix(), clock, logger: log.logger, random: () => 1 }));
    const heard = inbox(s, 'events');
    await s.ready();
    const reconnected = new Promise<void>((resolve) => s.onReconnect(resolve));

    proxy.freeze(); // the open connection now swallows every byte; new ones still get through
    clock.advance(10_000); // the probe goes out
    expect(s.connected).toBe(true); // nothing has told it otherwise yet
    clock.advance(5_000); // and is not answered in time
    const loss = await log.take('warn');
    expect(loss.message).toBe('signals connection lost; reconnecting');
    expect(loss.fields['error']).toBe('no answer to a probe within 5000 ms');
    expect(s.connected).toBe(false);

    clock.advance(loss.fields['retryInMs'] as number);
    await within(reconnected, 'onReconnect');
    s.notify('events', 'after');
    expect(await heard.next()).toBe('after');
  });

  it('a first connection that fails is retried, and onReconnect fires when it succeeds', async () => {
    const clock = createManualClock(0);
    const log = logSpy();
    await using proxy = await startProxy(new URL(pgUrl!));
    proxy.refuse = true;
    await using s = createPostgresSignals(withDefaults({ url: proxy.url, prefix: uniquePrefix(), clock, logger: log.logger, random: () => 1 }));
    const reconnected = new Promise<void>((resolve) => s.onReconnect(resolve));
    const heard = inbox(s, 'schedules');
    const failed = await log.take('warn');
    expect(failed.message).toBe('signals connection failed; retrying');
    expect(failed.fields).toMatchObject({ attempt: 1, retryInMs: 100 });
    expect(s.connected).toBe(false);

    proxy.refuse = false;
    clock.advance(100);
    await within(reconnected, 'onReconnect'); // signals sent before this point were never heard: the owner must look
    await s.ready();
    s.notify('schedules', 'agent-1');
    expect(await heard.next()).toBe('agent-1');
  });

  it('close() ends its one connection cleanly: no socket, no timer, no late error', async () => {
    const clock = createManualClock(0);
    const log = logSpy();
    await using proxy = await startProxy(new URL(pgUrl!));
    const s = createPostgresSignals(withDefaults({ url: proxy.url, prefix: uniquePrefix(), clock, logger: log.logger }));
    const heard = SIGNAL_CHANNELS.map((channel) => inbox(s, channel));
    await s.ready();
    s.notify('cancel', 'run-1');
    expect(await heard[2]!.next()).toBe('run-1');
    expect(proxy.open()).toBe(1); // listening on every channel and sending take one connection
    expect(clock.pendingTimers()).toBe(1); // the probe
    await s.close();
    expect(s.connected).toBe(false);
    expect(clock.pendingTimers()).toBe(0);
    await proxy.closed.take(); // the server's side of the connection has gone too
    expect(proxy.open()).toBe(0);
    clock.advance(60_000); // nothing is left to fire, and nothing reconnects
    expect(clock.pendingTimers()).toBe(0);
    expect(proxy.open()).toBe(0);
  });

  it('close() while waiting to reconnect cancels the retry and leaves nothing behind', async () => {
    const clock = createManualClock(0);
    const log = logSpy();
    await using proxy = await startProxy(new URL(pgUrl!));
    proxy.refuse = true;
    const s = createPostgresSignals(withDefaults({ url: proxy.url, prefix: uniquePrefix(), clock, logger: log.logger }));
    const waiting = s.ready();
    await log.take('warn');
    expect(clock.pendingTimers()).toBeGreaterThan(0); // the retry
    await s.close();
    await waiting; // ready() gives up when closed rather than hanging
    expect(clock.pendingTimers()).toBe(0);
    clock.advance(60_000);
    expect(clock.pendingTimers()).toBe(0);
  });
});
