import WebSocket from 'ws';
import { describe, expectTypeOf, it } from 'vitest';
import { createSchedulerClient, type AgentCreateInput, type AnyHandlers, type SchedulerClient } from '../client/index.ts';

/**
 * Pins the inferred types of the typed client; `npm test` runs tsc over this file, so a drift fails it, and so
 * does a `@ts-expect-error` line that stops being an error. Nothing here calls a server: `expectTypeOf` is a
 * no-op at run time.
 */
describe('typed client', () => {
  it('infers inputs and outputs from the server router', () => {
    const c = createSchedulerClient({ url: 'http://localhost:5000', token: 't' });
    expectTypeOf(c).toEqualTypeOf<SchedulerClient>();
    type CreateInput = Parameters<typeof c.agents.create.mutate>[0];
    expectTypeOf<CreateInput>().toMatchTypeOf<{ name: string; handler: string; id?: string; config?: Record<string, unknown> }>();
    expectTypeOf<Awaited<ReturnType<typeof c.agents.get.query>>['status']>().toEqualTypeOf<'IDLE' | 'RUNNING' | 'ERROR' | 'PAUSED' | 'COMPLETED'>();
    expectTypeOf<Awaited<ReturnType<typeof c.agents.get.query>>['nextRunAt']>().toEqualTypeOf<string | null>();

    type SetInput = Parameters<typeof c.schedule.set.mutate>[0];
    expectTypeOf<SetInput['priority']>().toEqualTypeOf<'LOW' | 'NORMAL' | 'HIGH' | 'CRITICAL' | undefined>();
    expectTypeOf<SetInput['cronExpression']>().toEqualTypeOf<string>();
    expectTypeOf<SetInput['agentId']>().toEqualTypeOf<string>();
    expectTypeOf<Awaited<ReturnType<typeof c.schedule.set.mutate>>['priority']>().toEqualTypeOf<'LOW' | 'NORMAL' | 'HIGH' | 'CRITICAL'>();

    type Info = Awaited<ReturnType<typeof c.schedule.get.query>>;
    expectTypeOf<NonNullable<Info['taskDetails']>['priority']>().toEqualTypeOf<number>();
    expectTypeOf<Awaited<ReturnType<typeof c.scheduler.status.query>>>().toEqualTypeOf<{
      isRunning: boolean; scheduledTasksCount: number; runningAgentsCount: number; queuedTasksCount: number; maxConcurrentAgents: number; pausedJobsCount: number;
    }>();
    expectTypeOf<Awaited<ReturnType<typeof c.agents.run.mutate>>>().toEqualTypeOf<{ runId: string }>();
    expectTypeOf<Awaited<ReturnType<typeof c.schedule.pause.mutate>>>().toEqualTypeOf<{ agentId: string; jobId: string; status: 'paused' }>();
    expectTypeOf<Awaited<ReturnType<typeof c.instances.list.query>>>().toEqualTypeOf<
      { id: string; host: string; pid: number; startedAt: string; heartbeatAt: string; running: number; maxConcurrent: number }[]
    >();
    expectTypeOf<Awaited<ReturnType<typeof c.agents.runs.query>>[number]['instanceId']>().toEqualTypeOf<string | null>();
    expectTypeOf<Parameters<typeof c.events.agent.subscribe>[0]>().toMatchTypeOf<{ agentId: string; lastEventId?: number | string | null }>();
    // Node 20 has no WebSocket of its own: ws's is taken without a cast, although its types are not the DOM's.
    expectTypeOf(createSchedulerClient).toBeCallableWith({ url: 'http://localhost:5000', token: 't', WebSocket });
  });

  it('accepts only known handler names, each with its own config type', () => {
    const c = createSchedulerClient({ url: 'http://localhost:5000', token: 't' });
    const create = expectTypeOf(c.agents.create.mutate);
    create.toBeCallableWith({ name: 'A', handler: 'demo' });
    create.toBeCallableWith({ name: 'A', handler: 'demo', config: { steps: 4, stepMs: 250 } });
    create.toBeCallableWith({ name: 'A', handler: 'webhook', config: { url: 'http://localhost:9000/hook', timeoutMs: 5000 } });
    create.toBeCallableWith({ name: 'A', handler: 'llm', config: { baseUrl: 'http://localhost:11434/v1', model: 'llama3.2', prompt: 'Hi' } });
    // @ts-expect-error: not a registered handler
    create.toBeCallableWith({ name: 'A', handler: 'no-such-handler' });
    // @ts-expect-error: demo's steps is a number
    create.toBeCallableWith({ name: 'A', handler: 'demo', config: { steps: 'four' } });
    // @ts-expect-error: demo's config is strict, as its schema is
    create.toBeCallableWith({ name: 'A', handler: 'demo', config: { stepz: 4 } });
    // @ts-expect-error: a webhook needs its url, so config cannot be left out
    create.toBeCallableWith({ name: 'A', handler: 'webhook' });
    // @ts-expect-error: an llm agent needs a prompt
    create.toBeCallableWith({ name: 'A', handler: 'llm', config: { baseUrl: 'http://localhost:11434/v1', model: 'llama3.2' } });
    // @ts-expect-error: a webhook's config, not demo's
    create.toBeCallableWith({ name: 'A', handler: 'webhook', config: { steps: 4 } });

    // An update names no handler: its config must fit one of them.
    expectTypeOf(c.agents.update.mutate).toBeCallableWith({ agentId: 'a', config: { steps: 2 } });
    // @ts-expect-error: fits no handler's config
    expectTypeOf(c.agents.update.mutate).toBeCallableWith({ agentId: 'a', config: { steps: 'four' } });

    // Everything but the input is the router's own.
    expectTypeOf<Awaited<ReturnType<typeof c.agents.create.mutate>>>().toEqualTypeOf<Awaited<ReturnType<typeof c.agents.get.query>>>();
  });

  it('widens to the handlers an embedding app registers', () => {
    interface ResizeConfig { width: number; height?: number }
    const c = createSchedulerClient<{ resize: ResizeConfig }>({ url: 'http://localhost:5000', token: 't' });
    const create = expectTypeOf(c.agents.create.mutate);
    create.toBeCallableWith({ name: 'A', handler: 'resize', config: { width: 640 } });
    create.toBeCallableWith({ name: 'A', handler: 'demo', config: { steps: 2 } });
    // @ts-expect-error: width is a number
    create.toBeCallableWith({ name: 'A', handler: 'resize', config: { width: 'wide' } });
    // @ts-expect-error: resize has a required field, so config cannot be left out
    create.toBeCallableWith({ name: 'A', handler: 'resize' });
    // @ts-expect-error: still not a handler this client knows
    create.toBeCallableWith({ name: 'A', handler: 'crop', config: { width: 640 } });
    expectTypeOf<AgentCreateInput<{ resize: ResizeConfig }>>().toEqualTypeOf<Parameters<typeof c.agents.create.mutate>[0]>();
    // The other procedures are the same as on a client without custom handlers.
    expectTypeOf<(typeof c)['agents']['get']>().toEqualTypeOf<SchedulerClient['agents']['get']>();
    expectTypeOf<(typeof c)['events']>().toEqualTypeOf<SchedulerClient['events']>();

    // A map declared as an interface (no index signature) works as well.
    interface AppHandlers { resize: ResizeConfig; 'reports.weekly': { recipients: string[] } }
    const d = createSchedulerClient<AppHandlers>({ url: 'http://localhost:5000', token: 't' });
    expectTypeOf(d.agents.create.mutate).toBeCallableWith({ name: 'A', handler: 'reports.weekly', config: { recipients: ['ops@example.com'] } });

    // AnyHandlers: any name, any JSON-object config (a CLI that reads the handler from its arguments).
    const any = createSchedulerClient<AnyHandlers>({ url: 'http://localhost:5000', token: 't' });
    const fromArgs: string = 'whatever';
    expectTypeOf(any.agents.create.mutate).toBeCallableWith({ name: 'A', handler: fromArgs, config: { anything: 1 } });
  });
});
