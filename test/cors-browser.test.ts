import { existsSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type TestServer } from './harness.ts';

/**
 * CORS as a browser sees it (issue 12, first contact): Debian's Chromium, driven by playwright-core, opens a
 * page served by a second local HTTP server — another origin — and calls the scheduler from it: REST with a
 * token (a preflight), tRPC over HTTP and Socket.IO. A page on a listed origin gets its answers; a page on
 * any other origin is blocked. Never downloads a browser: without /usr/bin/chromium the suite is skipped,
 * saying why, except under CI, where it fails (.ci/run installs Chromium).
 */

const CHROMIUM = '/usr/bin/chromium';
const HAVE_CHROMIUM = existsSync(CHROMIUM);
if (!HAVE_CHROMIUM && !process.env['CI']) {
  process.stdout.write(`CORS browser test skipped: ${CHROMIUM} is missing (apt-get install -y chromium; CI installs it).\n`);
}

const socketIoClient = readFileSync(join(dirname(createRequire(import.meta.url).resolve('socket.io-client')), '../../dist/socket.io.min.js'));

/** The page's server: an empty page and the Socket.IO client script, on its own port. */
async function pageServer(): Promise<{ port: number; server: Server }> {
  const server = createServer((req, res) => {
    if (req.url === '/socket.io.min.js') {
      res.writeHead(200, { 'content-type': 'text/javascript' });
      return void res.end(socketIoClient);
    }
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end('<!doctype html><title>other origin</title><script src="/socket.io.min.js"></script>');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const addr = server.address();
  return { port: typeof addr === 'object' && addr ? addr.port : 0, server };
}

/** What the page manages to do against the scheduler at `api` with `token`. */
interface Outcome { rest: string; create: string; trpc: string; socket: string }

async function tryFromPage(browser: Browser, pageUrl: string, api: string, token: string): Promise<Outcome> {
  const page = await browser.newPage();
  try {
    await page.goto(pageUrl);
    return await page.evaluate(async ({ api, token }) => {
      const auth = { authorization: `Bearer ${token}` };
      const attempt = (p: Promise<Response>) => p.then((r) => `status ${r.status}`, (e: Error) => `blocked: ${e.message}`);
      const rest = await attempt(fetch(`${api}/api/agents`, { headers: auth }));
      const create = await attempt(fetch(`${api}/api/agents`, {
        method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ name: 'From a page', handler: 'demo' }),
      }));
      const trpc = await attempt(fetch(`${api}/trpc/agents.list`, { headers: auth }));
      const io = (globalThis as unknown as { io: (url: string, o: object) => any }).io;
      const socket = await new Promise<string>((resolve) => {
        const s = io(api, { auth: { token }, reconnection: false });
        s.once('connect_error', (e: Error) => (s.close(), resolve(`blocked: ${e.message}`)));
        s.once('connect', () => s.emit('subscribe-scheduler-updates', (ack: { success: boolean }) => (s.close(), resolve(`ack ${ack.success}`))));
      });
      return { rest, create, trpc, socket };
    }, { api, token });
  } finally {
    await page.close();
  }
}

describe.skipIf(!HAVE_CHROMIUM && !process.env['CI'])('CORS in Chromium', () => {
  let browser: Browser;
  let page: { port: number; server: Server };
  let s: TestServer;

  beforeAll(async () => {
    if (!HAVE_CHROMIUM) throw new Error(`CI needs ${CHROMIUM} for the CORS browser test (.ci/run installs it)`);
    page = await pageServer();
    // The page is listed under `localhost`; the same page under 127.0.0.1 is another origin, not listed.
    s = await startServer({ env: { CORS_ORIGINS: `http://localhost:${page.port}` } });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run'],
    });
  });
  afterAll(async () => {
    await browser?.close();
    await s?.[Symbol.asyncDispose]();
    await new Promise((r) => page?.server.close(r));
  });

  it('lets a page on a listed origin call REST with a token, tRPC and Socket.IO', async () => {
    const got = await tryFromPage(browser, `http://localhost:${page.port}/`, s.url, await s.token());
    expect(got).toEqual({ rest: 'status 200', create: 'status 201', trpc: 'status 200', socket: 'ack true' });
  });

  it('blocks a page on any other origin, at every door', async () => {
    const before = (await s.call('GET', '/api/agents')).body.data.length;
    const got = await tryFromPage(browser, `http://127.0.0.1:${page.port}/`, s.url, await s.token());
    expect(got.rest).toMatch(/^blocked/);
    expect(got.create).toMatch(/^blocked/);
    expect(got.trpc).toMatch(/^blocked/);
    expect(got.socket).toMatch(/^blocked/);
    expect((await s.call('GET', '/api/agents')).body.data.length).toBe(before);
  });
});
