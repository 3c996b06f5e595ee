import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createApp, type App } from '../src/app.ts';
import { loadConfig, type Config } from '../src/config.ts';
import type { Clock } from '../src/core/clock.ts';
import type { HandlerDefinition } from '../src/core/handlers.ts';
import type { StoredEvent } from '../src/schemas/events.ts';
import { betterSqliteDialect } from '../src/storage/dialects/better-sqlite3.ts';

export const TEST_SECRET = 'test-secret-that-is-at-least-32-bytes-long!!';

export function testConfig(env: Record<string, string> = {}): Config {
  return loadConfig({ DATABASE_URL: ':memory:', JWT_SECRET: TEST_SECRET, PORT: '0', ...env });
}

/** A temporary folder removed on dispose. */
export function tempDir(): { path: string } & Disposable {
  const path = mkdtempSync(join(tmpdir(), 'sched-test-'));
  return { path, [Symbol.dispose]: () => rmSync(path, { recursive: true, force: true }) };
}

export interface TestServer extends AsyncDisposable {
  app: App;
  url: string;
  token(sub?: string, role?: string): Promise<string>;
  /** fetch against the server with a JSON body and a bearer token. */
  call(method: string, path: string, opts?: { token?: string | null; body?: unknown; raw?: string; headers?: Record<string, string> }): Promise<{ status: number; body: any; headers: Headers }>;
}

export async function startServer(opts: { env?: Record<string, string>; handlers?: HandlerDefinition<never>[]; clock?: Clock; dbFile?: string } = {}): Promise<TestServer> {
  const config = testConfig(opts.env);
  const app = await createApp({
    config,
    dialect: betterSqliteDialect(opts.dbFile ? `file:${opts.dbFile}` : ':memory:'),
    jwtSecret: config.JWT_SECRET ?? TEST_SECRET,
    webhookSecret: config.WEBHOOK_SIGNING_SECRET ?? 'webhook-secret',
    handlers: opts.handlers,
    clock: opts.clock,
  });
  const { port } = await app.listen(0, '127.0.0.1');
  const url = `http://127.0.0.1:${port}`;
  const defaultToken = await app.auth.sign({ sub: 'alice' });
  return {
    app,
    url,
    token: (sub = 'alice', role?: string) => app.auth.sign({ sub, ...(role && { role }) }),
    async call(method, path, o = {}) {
      const headers: Record<string, string> = { ...o.headers };
      const token = o.token === undefined ? defaultToken : o.token;
      if (token) headers['authorization'] = `Bearer ${token}`;
      let body: string | undefined = o.raw;
      if (o.body !== undefined) {
        body = JSON.stringify(o.body);
        headers['content-type'] = 'application/json';
      }
      const res = await fetch(url + path, { method, headers, body });
      const text = await res.text();
      let parsed: unknown = text;
      try {
        parsed = JSON.parse(text);
      } catch {
        // not JSON: tests assert on the text
      }
      return { status: res.status, body: parsed, headers: res.headers };
    },
    [Symbol.asyncDispose]: () => app.close(1000),
  };
}

/** Resolves with the first event matching `pred` (events already past are not seen). */
export function nextEvent(app: App, pred: (e: StoredEvent) => boolean, timeoutMs = 15_000): Promise<StoredEvent> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => {
      off();
      reject(new Error('timed out waiting for an event'));
    }, timeoutMs);
    const off = app.scheduler.events.on((e) => {
      if (pred(e)) {
        clearTimeout(t);
        off();
        resolve(e);
      }
    });
  });
}

/** Collects events into an array until disposed. */
export function collectEvents(app: App): { events: StoredEvent[] } & Disposable {
  const events: StoredEvent[] = [];
  const off = app.scheduler.events.on((e) => events.push(e));
  return { events, [Symbol.dispose]: off };
}

/** A promise with its resolve/reject on the outside. */
export function deferred<T = void>() {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}
