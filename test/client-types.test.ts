import { describe, expectTypeOf, it } from 'vitest';
import { createSchedulerClient, type SchedulerClient } from '../client/index.ts';

/** Pins the inferred types of the typed client; `npm test` runs tsc over this file, so a drift fails it. */
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
  });
});
