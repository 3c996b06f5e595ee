import { existsSync, mkdirSync, statSync } from 'node:fs';
import { createServer } from 'node:http';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createStaticHandler } from '../src/transport/static.ts';
import { startServer, type TestServer } from './harness.ts';

/**
 * The dashboard at `/` as a user sees it (README "Dashboard"), in Debian's Chromium driven by playwright-core:
 * log in with a pasted token, create an agent, schedule it, run it and watch its bar fill, pause and resume
 * it, read a failing agent's error, and never load anything from another origin. Needs web/dist
 * (`npm run build:web`, run by postinstall). Without /usr/bin/chromium the suite is skipped, saying why,
 * except under CI, where it fails. SCREENSHOTS=1 also writes docs/screenshots/*.png.
 */

const CHROMIUM = '/usr/bin/chromium';
const HAVE_CHROMIUM = existsSync(CHROMIUM);
if (!HAVE_CHROMIUM && !process.env['CI']) {
  process.stdout.write(`Dashboard browser test skipped: ${CHROMIUM} is missing (apt-get install -y chromium; CI installs it).\n`);
}
const SCREENSHOTS = process.env['SCREENSHOTS'] === '1';
const WAIT = { timeout: 15_000 };

async function shot(page: Page, name: string): Promise<void> {
  if (!SCREENSHOTS) return;
  mkdirSync('docs/screenshots', { recursive: true });
  const path = `docs/screenshots/${name}.png`;
  await page.screenshot({ path });
  expect(statSync(path).size).toBeLessThan(150_000);
}

describe.skipIf(!HAVE_CHROMIUM && !process.env['CI'])('the dashboard in Chromium', () => {
  let browser: Browser;
  let s: TestServer;
  let page: Page;
  const requested: string[] = [];

  beforeAll(async () => {
    if (!HAVE_CHROMIUM) throw new Error(`CI needs ${CHROMIUM} for the dashboard browser test (.ci/run installs it)`);
    s = await startServer();
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run'],
    });
    page = await browser.newPage({ viewport: { width: 1100, height: 700 } });
    page.on('request', (r) => requested.push(r.url()));
    page.on('websocket', (ws) => requested.push(ws.url()));
  });
  afterAll(async () => {
    await browser?.close();
    await s?.[Symbol.asyncDispose]();
  });

  it('serves the page with its CSP, and says so when a path is not one of its files', async () => {
    const res = await fetch(`${s.url}/`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-security-policy')).toContain("default-src 'self'");
    expect(res.headers.get('cache-control')).toBe('no-cache');
    expect((await fetch(`${s.url}/assets/../../package.json`)).status).toBe(404);
    expect((await fetch(`${s.url}/assets/nope.js`)).status).toBe(404);
    expect((await fetch(`${s.url}/healthz`)).status).toBe(200);
  });

  it('logs in with a token, and shows the server\'s message for a wrong one', async () => {
    await page.goto(`${s.url}/`);
    await page.getByLabel('Access token (JWT)').fill('not-a-token');
    await page.getByRole('button', { name: 'Log in' }).click();
    await expect.poll(() => page.getByRole('alert').textContent(), WAIT).toMatch(/token/i);
    await shot(page, 'login'); // before a real token is in the field: the picture shows none
    await page.getByLabel('Access token (JWT)').fill(await s.token('root', 'admin'));
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.getByRole('heading', { name: 'Agents' }).waitFor(WAIT);
    // The scheduler-wide figures arrive over the WebSocket (events.scheduler).
    await expect.poll(() => page.getByLabel('Scheduler').textContent(), WAIT).toMatch(/\d+ \/ \d+ running/);
    // An admin sees the instances panel.
    await page.getByRole('heading', { name: 'Instances' }).waitFor(WAIT);
  });

  it('creates an agent, schedules it, runs it with a live bar, pauses and resumes it', async () => {
    await page.getByLabel('Name').fill('Writer');
    await page.getByLabel('Id (optional)').fill('writer');
    await page.getByLabel('Handler').selectOption('demo');
    await page.getByLabel('Config (JSON)').fill('{"steps":5,"stepMs":300}');
    await page.getByRole('button', { name: 'Create agent' }).click();
    const row = page.getByRole('row', { name: /Writer/ });
    await row.waitFor(WAIT);
    await expect.poll(() => row.textContent(), WAIT).toContain('demo');

    // The new agent is selected: its schedule form previews what is typed before it is saved.
    await page.getByLabel('Cron expression').fill('0 * * * *');
    await expect.poll(() => page.getByLabel('Next fires').textContent(), WAIT).toMatch(/past the hour|every hour/i);
    await page.getByRole('button', { name: 'Set schedule' }).click();
    await expect.poll(() => row.textContent(), WAIT).toMatch(/0 \* \* \* \*.*(past the hour|every hour).*UTC/i);

    await page.getByRole('button', { name: 'Run now' }).click();
    const bar = page.getByRole('progressbar', { name: 'Progress of Writer' });
    await bar.waitFor(WAIT);
    await expect.poll(() => bar.getAttribute('aria-valuenow'), WAIT).toBe('100');
    const runs = page.getByRole('table', { name: 'Runs' });
    await expect.poll(() => runs.textContent(), WAIT).toContain('completed');

    await page.getByRole('button', { name: 'Pause' }).click();
    await expect.poll(() => row.textContent(), WAIT).toMatch(/PAUSED.*yes: manual/);
    await expect.poll(() => page.getByRole('button', { name: 'Resume' }).isEnabled(), WAIT).toBe(true);
    await shot(page, 'agents');
    await page.getByRole('button', { name: 'Resume' }).click();
    await expect.poll(() => row.textContent(), WAIT).not.toMatch(/PAUSED|yes: manual/);

    // A click on a run shows its whole output (runs.get).
    await page.getByRole('button', { name: /^Output of run / }).first().click();
    await page.getByLabel(/^Full output of run /).waitFor(WAIT);
  });

  it('shows a failing run\'s error, and a server error next to the form that caused it', async () => {
    const created = await s.call('POST', '/api/agents', {
      token: await s.token('root', 'admin'),
      body: { id: 'breaker', name: 'Breaker', handler: 'demo', config: { steps: 1, stepMs: 1, failTimes: 5 }, maxRetries: 0, budget: { period: 'day', maxCostUsd: 2.5 } },
    });
    expect(created.status).toBe(201);
    await page.reload(); // the token is kept for the tab: no second login
    await page.getByRole('button', { name: 'Breaker' }).click();
    await expect.poll(() => page.getByLabel('Budget').textContent(), WAIT).toBe('Budget per day: $2.5');
    await page.getByRole('button', { name: 'Run now' }).click();
    await expect.poll(() => page.getByRole('table', { name: 'Runs' }).textContent(), WAIT).toContain('demo failure (attempt 1)');
    await shot(page, 'agent-runs');

    await page.getByLabel('Cron expression').fill('not a cron');
    await page.getByRole('button', { name: 'Set schedule' }).click();
    await expect.poll(() => page.getByRole('form', { name: 'Schedule' }).getByRole('alert').textContent(), WAIT).toMatch(/cron/i);
  });

  it('shows the bar of a run already going when the page loads, and cancels it', async () => {
    const admin = await s.token('root', 'admin');
    expect((await s.call('POST', '/api/agents', { token: admin, body: { id: 'slow', name: 'Slow', handler: 'demo', config: { steps: 50, stepMs: 200 } } })).status).toBe(201);
    expect((await s.call('POST', '/api/agents/slow/run', { token: admin })).status).toBe(202);
    await expect.poll(async () => (await s.call('GET', '/api/agents/slow/runs', { token: admin })).body.data[0]?.status, WAIT).toBe('running');
    await page.reload();
    await page.getByRole('progressbar', { name: 'Progress of Slow' }).waitFor(WAIT);
    await page.getByRole('button', { name: 'Slow' }).click();
    await page.getByRole('button', { name: /^Cancel run / }).click();
    await expect.poll(() => page.getByRole('table', { name: 'Runs' }).textContent(), WAIT).toContain('cancelled');
  });

  it('saves overlap and catch-up from the form, shows the fire ledger, and backfills past slots', async () => {
    const admin = await s.token('root', 'admin');
    expect((await s.call('POST', '/api/agents', { token: admin, body: { id: 'ledgered', name: 'Ledgered', handler: 'demo', config: { steps: 1, stepMs: 1 } } })).status).toBe(201);
    await page.reload();
    await page.getByRole('button', { name: 'Ledgered' }).click();
    await page.getByLabel('Cron expression').fill('* * * * *');
    await page.getByLabel('Overlap').selectOption('queue-one');
    await page.getByLabel('Catch-up', { exact: true }).selectOption('all');
    await page.getByLabel('Catch-up window').fill('1h');
    await page.getByRole('button', { name: 'Set schedule' }).click();
    await expect.poll(async () => (await s.call('GET', '/api/agents/ledgered/schedule', { token: admin })).body.data?.taskDetails, WAIT)
      .toMatchObject({ overlap: 'queue-one', catchUp: { policy: 'all', window: '1h' }, jitterMs: 0 });
    // A fresh page fills the form from what was saved.
    await page.reload();
    await page.getByRole('button', { name: 'Ledgered' }).click();
    await expect.poll(() => page.getByLabel('Overlap').inputValue(), WAIT).toBe('queue-one');
    expect(await page.getByLabel('Catch-up', { exact: true }).inputValue()).toBe('all');
    expect(await page.getByLabel('Catch-up window').inputValue()).toBe('1h');

    await page.getByRole('button', { name: 'Run now' }).click();
    await expect.poll(() => page.getByRole('table', { name: 'Runs' }).textContent(), WAIT).toContain('completed');
    // The strip is there once the schedule is; a run started by hand fills no slot of it, so its first
    // square comes from the backfill below (the next scheduled slot may be up to a minute away).
    const strip = page.getByRole('list', { name: 'Fire ledger' });
    await strip.waitFor(WAIT);

    // Two whole past minutes: [top - 3 min, top - 1 min) holds two slots of `* * * * *`, neither run yet.
    // datetime-local takes the browser's wall time, so the page itself formats them.
    const top = Math.floor(Date.now() / 60_000) * 60_000;
    const local = (ms: number) => page.evaluate((t) => new Date(t - new Date(t).getTimezoneOffset() * 60_000).toISOString().slice(0, 16), ms);
    await page.getByLabel('Backfill from').fill(await local(top - 3 * 60_000));
    await page.getByLabel('Backfill to').fill(await local(top - 60_000));
    await page.getByRole('button', { name: 'Backfill', exact: true }).click();
    const backfill = page.getByRole('form', { name: 'Backfill' });
    await expect.poll(() => backfill.getByRole('status').textContent(), WAIT).toBe('Queued 2 runs (0 slots already had one)');
    await strip.getByRole('listitem', { name: /: backfilled/ }).first().waitFor(WAIT);
    expect(await strip.getByRole('listitem').count()).toBeGreaterThanOrEqual(1);
  });

  it('loads nothing from any other origin', () => {
    const ws = s.url.replace(/^http/, 'ws');
    expect(requested.length).toBeGreaterThan(0);
    expect(requested.filter((u) => !u.startsWith(`${s.url}/`) && !u.startsWith(`${ws}/`) && !u.startsWith('data:'))).toEqual([]);
    expect(requested.some((u) => u.startsWith(`${ws}/trpc`))).toBe(true);
  });
});

describe('the dashboard before it is built', () => {
  it('answers / with 503 and the command that builds it', async () => {
    const handle = createStaticHandler({ logger: { error: () => {}, warn: () => {}, info: () => {} } as never, dir: new URL('./no-such-dist/', import.meta.url) });
    const server = createServer((req, res) => handle(req, res, new URL(req.url ?? '/', 'http://localhost')));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const addr = server.address();
      const res = await fetch(`http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}/`);
      expect(res.status).toBe(503);
      expect(res.headers.get('content-type')).toMatch(/^text\/html/);
      expect(await res.text()).toContain('Dashboard not built: run npm run build:web');
    } finally {
      await new Promise((r) => server.close(r));
    }
  });
});
