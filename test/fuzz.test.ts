import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { procedures, type CallProcedureName } from '../src/services/procedures.ts';
import { routes, type ProcedureRoute } from '../src/transport/rest/routes.ts';
import { startServer, type TestServer } from './harness.ts';

/**
 * A fuzz suite generated from the zod schemas (issue 12, reliability plan): for every REST route of
 * `transport/rest/routes.ts` and every query and mutation of `services/procedures.ts` over tRPC HTTP, inputs are
 * drawn from the route's own schemas — valid ones, and variants with one field replaced by anything, an unknown
 * field, or a malformed body — and sent to a real server by three callers (two owners and an admin), over ids
 * that exist, belong to someone else, or never did. Asserted: no 5xx; every 4xx carries its error envelope with
 * a message; afterwards the store holds nothing half-written (no agent without its fields, no schedule or run
 * of a missing agent).
 *
 * `FUZZ_REQUESTS` per door (default 1,200: 2,400 requests, a few seconds); `FUZZ_SEED` replays another sample.
 */

const REQUESTS = Number(process.env['FUZZ_REQUESTS'] ?? 1200);
const SEED = Number(process.env['FUZZ_SEED'] ?? 12);

/** Ids the requests draw from: alice's, bob's, ones created by the fuzz itself, and ones that never exist. */
const IDS = ['a1', 'a2', 'b1', 'f1', 'f2', 'nope', 'run_missing'];

// ---------- values from a zod schema ----------

type Def = { type: string; [k: string]: any };
const def = (s: z.ZodType): Def => (s as any)._zod.def as Def;

/** A value the schema should accept (mostly), keyed by field name where the name says more than the type. */
function valid(schema: z.ZodType, key = ''): fc.Arbitrary<unknown> {
  const d = def(schema);
  switch (d.type) {
    case 'optional':
      return fc.option(valid(d['innerType'], key), { nil: undefined });
    case 'nullable':
      return fc.option(valid(d['innerType'], key), { nil: null });
    case 'default':
    case 'prefault':
    case 'readonly':
      return fc.option(valid(d['innerType'], key), { nil: undefined });
    case 'pipe':
      return valid(d['in'], key);
    case 'object': {
      const shape = d['shape'] as Record<string, z.ZodType>;
      return fc.record(Object.fromEntries(Object.entries(shape).map(([k, v]) => [k, valid(v, k)])), { requiredKeys: [] });
    }
    case 'enum':
      return fc.constantFrom(...Object.values(d['entries'] as Record<string, string>));
    case 'boolean':
      return fc.boolean();
    case 'number':
    case 'int':
      return fc.oneof(fc.integer({ min: 0, max: 5000 }), fc.integer(), fc.double({ noNaN: true }));
    case 'record':
      return fc.oneof(
        fc.constant({ steps: 1, stepMs: 1 }),
        fc.record({ steps: fc.integer({ min: -2, max: 3 }), stepMs: fc.integer({ min: 0, max: 5 }), failTimes: fc.integer({ min: 0, max: 2 }) }, { requiredKeys: [] }),
        fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 4 }),
      );
    case 'string': {
      if (/id$/i.test(key)) return fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...IDS) }, { weight: 1, arbitrary: fc.string({ maxLength: 70 }) });
      if (key === 'cronExpression') return fc.constantFrom('* * * * *', '*/5 * * * * *', '0 0 30 2 *', '@daily', '@nope', '61 * * * *', '0 9 * * MON-FRI', 'x');
      if (key === 'timezone') return fc.constantFrom('UTC', 'Europe/Berlin', 'Mars/Olympus', '');
      if (key === 'handler') return fc.constantFrom('demo', 'webhook', 'llm', 'no-such-handler', '');
      if (key === 'from' || key === 'to') return fc.oneof(fc.date({ noInvalidDate: true, min: new Date(0), max: new Date(Date.UTC(2100, 0)) }).map((x) => x.toISOString()), fc.string({ maxLength: 30 }));
      return fc.string({ maxLength: 40 });
    }
    default:
      return fc.jsonValue({ maxDepth: 2 });
  }
}

/** One input: valid, one field broken, an unknown field, or not an object at all. */
function input(schema: z.ZodType | undefined): fc.Arbitrary<unknown> {
  if (!schema) return fc.constant(undefined);
  const base = valid(schema);
  return fc.oneof(
    { weight: 6, arbitrary: base },
    {
      weight: 3,
      arbitrary: fc.tuple(base, fc.string({ maxLength: 12 }), fc.jsonValue({ maxDepth: 3 })).map(([v, k, x]) => {
        const keys = v && typeof v === 'object' ? Object.keys(v) : [];
        const target = keys.length > 0 && k.length % 2 === 0 ? keys[k.length % keys.length]! : k;
        return { ...(v as object), [target]: x };
      }),
    },
    { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 2 }) },
  );
}

// ---------- the callers and the doors ----------

interface Answer {
  door: string;
  status: number;
  body: any;
}

const restRoutes = routes.filter((r): r is ProcedureRoute => r.kind === 'procedure');

function fill(path: string, values: Record<string, unknown>): string {
  return path.replace(/:(\w+)/g, (_m, name: string) => encodeURIComponent(String(values[name] ?? 'x')));
}

async function rest(s: TestServer, token: string, route: ProcedureRoute, value: unknown, malformed: boolean): Promise<Answer> {
  const obj = value && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : {};
  const pathKeys = (route.path.match(/:(\w+)/g) ?? []).map((k) => k.slice(1));
  const queryKeys = route.query instanceof z.ZodObject ? Object.keys(route.query.shape) : [];
  const qs = new URLSearchParams();
  for (const k of queryKeys) if (obj[k] !== undefined) qs.set(k, String(obj[k]));
  const body = Object.fromEntries(Object.entries(obj).filter(([k]) => !pathKeys.includes(k) && !queryKeys.includes(k)));
  const path = fill(route.path, obj) + (qs.size > 0 ? `?${qs}` : '');
  const hasBody = route.method !== 'GET' && route.method !== 'DELETE';
  const raw = malformed ? '{"name": ' : JSON.stringify(value === obj ? body : value);
  const r = await s.call(route.method, path, { token, ...(hasBody && { raw, headers: { 'content-type': 'application/json' } }) });
  return { door: `REST ${route.method} ${path}`, status: r.status, body: r.body };
}

async function trpc(s: TestServer, token: string, name: CallProcedureName, value: unknown): Promise<Answer> {
  const p = procedures[name];
  const payload = JSON.stringify({ json: value === undefined ? null : value });
  const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
  const res = p.kind === 'query'
    ? await fetch(`${s.url}/trpc/${name}?input=${encodeURIComponent(payload)}`, { headers })
    : await fetch(`${s.url}/trpc/${name}`, { method: 'POST', headers, body: payload });
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // asserted below: an error answer must be JSON
  }
  return { door: `tRPC ${name}`, status: res.status, body };
}

const callProcedures = (Object.keys(procedures) as (keyof typeof procedures)[]).filter((n): n is CallProcedureName => procedures[n].kind !== 'subscription');

// ---------- the run ----------

describe('fuzz: every route and procedure, from the zod schemas', () => {
  it(`${REQUESTS} REST and ${REQUESTS} tRPC HTTP requests: no 5xx, every 4xx in its envelope, nothing half-written`, async () => {
    await using s = await startServer();
    const tokens = [await s.token('alice'), await s.token('bob'), await s.token('root', 'admin')];
    for (const [id, who] of [['a1', 0], ['a2', 0], ['b1', 1]] as const) {
      const r = await s.call('POST', '/api/agents', { token: tokens[who], body: { id, name: id, handler: 'demo', config: { steps: 1, stepMs: 1 } } });
      expect(r.status).toBe(201);
    }

    const restCase = fc.tuple(fc.nat(restRoutes.length - 1), fc.nat(2), fc.boolean()).chain(([i, who, malformed]) =>
      input(restRoutes[i]!.procedure.input).map((value) => ({ route: restRoutes[i]!, who, value, malformed: malformed && i % 3 === 0 })),
    );
    const trpcCase = fc.tuple(fc.nat(callProcedures.length - 1), fc.nat(2)).chain(([i, who]) =>
      input(procedures[callProcedures[i]!].input as z.ZodType | undefined).map((value) => ({ name: callProcedures[i]!, who, value })),
    );

    const problems: string[] = [];
    const seen = new Set<string>();
    const check = (a: Answer, sent: unknown, reached: string) => {
      seen.add(reached);
      const what = `${a.door} ${JSON.stringify(sent)?.slice(0, 300)} → ${a.status} ${JSON.stringify(a.body)?.slice(0, 300)}`;
      if (a.status >= 500) problems.push(`5xx: ${what}`);
      else if (a.status >= 400) {
        const message = a.door.startsWith('REST') ? (a.body?.success === false ? a.body.error : undefined) : a.body?.error?.json?.message;
        if (typeof message !== 'string' || message.length === 0) problems.push(`4xx without its envelope and message: ${what}`);
      }
    };

    for (const c of fc.sample(restCase, { seed: SEED, numRuns: REQUESTS })) check(await rest(s, tokens[c.who]!, c.route, c.value, c.malformed), c.value, `${c.route.method} ${c.route.path}`);
    for (const c of fc.sample(trpcCase, { seed: SEED + 1, numRuns: REQUESTS })) check(await trpc(s, tokens[c.who]!, c.name, c.value), c.value, c.name);

    // Nothing half-written: read the store the server wrote, after its writes have settled.
    const agents = await s.app.repo.listAgents(null);
    for (const a of agents) {
      for (const f of ['id', 'owner', 'name', 'handler'] as const) if (typeof a[f] !== 'string' || a[f] === '') problems.push(`agent ${a.id} without ${f}: ${JSON.stringify(a)}`);
      if (a.config === null || typeof a.config !== 'object') problems.push(`agent ${a.id} without its config: ${JSON.stringify(a)}`);
    }
    const ids = new Set(agents.map((a) => a.id));
    for (const sch of await s.app.repo.loadSchedules()) if (!ids.has(sch.agentId)) problems.push(`schedule of a missing agent: ${JSON.stringify(sch)}`);
    for (const id of IDS) if (!ids.has(id) && (await s.app.repo.listRuns(id, 1000)).length > 0) problems.push(`runs of the missing agent ${id}`);

    console.log(`fuzz: ${REQUESTS * 2} requests (seed ${SEED}), ${agents.length} agents at the end; problems: ${problems.length}`);
    expect(problems.slice(0, 15)).toEqual([]);
    // Every REST row and every tRPC query and mutation was reached.
    expect(restRoutes.map((r) => `${r.method} ${r.path}`).filter((k) => !seen.has(k))).toEqual([]);
    expect(callProcedures.filter((n) => !seen.has(n))).toEqual([]);
  }, 120_000);
});
