import { io } from 'socket.io-client';
import { describe, expect, it } from 'vitest';
import { deferred, startServer } from './harness.ts';

/**
 * The two examples of the published API document (its "Complete Scheduling Flow" and WebSocket
 * client), run as they are written (with the server's URL in front of
 * their relative paths, and a real token for 'your-token').
 */
describe('published API examples', () => {
  it('Complete Scheduling Flow', async () => {
    await using s = await startServer();
    const token = await s.token();
    const fetch = (path: string, init: RequestInit) => globalThis.fetch(s.url + path, { ...init, headers: { ...(init.headers as Record<string, string>), Authorization: `Bearer ${token}` } });
    await s.call('POST', '/api/agents', { body: { id: 'agent-123', name: 'Content Creator Agent', handler: 'demo', config: { steps: 4, stepMs: 0 } } });
    const socket = io(s.url, { auth: { token } });
    try {
      // 1. Schedule an agent
      const scheduleResponse = await fetch('/api/agents/agent-123/schedule', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Authorization: 'Bearer your-token' },
        body: JSON.stringify({ cronExpression: '0 */6 * * *', priority: 'HIGH', enabled: true }),
      });
      expect(scheduleResponse.ok).toBe(true);
      expect(await scheduleResponse.json()).toMatchObject({ success: true, data: { id: 'agent-123', scheduleExpression: '0 */6 * * *', scheduleEnabled: true } });

      // 2. Subscribe to real-time updates
      const seen: string[] = [];
      const completed = deferred<{ duration: number }>();
      const subscribed = deferred();
      socket.emit('subscribe-agent-updates', 'agent-123', () => subscribed.resolve());
      socket.on('agent:started', () => seen.push('started'));
      socket.on('agent:progress', (data: { progress: number; message: string }) => seen.push(`Progress: ${data.progress}% - ${data.message}`));
      socket.on('agent:completed', (data: { duration: number }) => {
        seen.push(`Completed in ${data.duration}ms`);
        completed.resolve(data);
      });
      await subscribed.promise;
      await s.call('POST', '/api/agents/agent-123/run'); // the 6-hourly fire, brought forward
      expect(typeof (await completed.promise).duration).toBe('number');
      expect(seen.slice(0, 5)).toEqual(['started', 'Progress: 25% - Step 1 of 4', 'Progress: 50% - Step 2 of 4', 'Progress: 75% - Step 3 of 4', 'Progress: 100% - Step 4 of 4']);

      // 3. Pause if needed
      const pauseResponse = await fetch('/api/agents/agent-123/schedule/agent-123/pause', { method: 'PATCH', headers: { Authorization: 'Bearer your-token' } });
      expect(pauseResponse.status).toBe(200);
      expect(await pauseResponse.json()).toMatchObject({ success: true, data: { status: 'paused' } });

      // 4. Resume when ready
      const resumeResponse = await fetch('/api/agents/agent-123/schedule/agent-123/resume', { method: 'PATCH', headers: { Authorization: 'Bearer your-token' } });
      expect(resumeResponse.status).toBe(200);
      expect(await resumeResponse.json()).toMatchObject({ success: true, data: { status: 'resumed', nextRunAt: expect.any(String) } });
    } finally {
      socket.close();
    }
  });

  it('Monitoring Multiple Agents', async () => {
    await using s = await startServer();
    const token = await s.token();
    const fetch = (path: string, init: RequestInit) => globalThis.fetch(s.url + path, { ...init, headers: { ...(init.headers as Record<string, string>), Authorization: `Bearer ${token}` } });
    for (const [id, cron] of [['writer', '*/5 * * * *'], ['reviewer', '0 9 * * 1-5'], ['idle', null]] as const) {
      await s.call('POST', '/api/agents', { body: { id, name: `${id} agent`, handler: 'demo' } });
      if (cron) await s.call('POST', `/api/agents/${id}/schedule`, { body: { cronExpression: cron } });
    }
    const socket = io(s.url, { auth: { token } });
    try {
      // Get all scheduled agents
      const agents = await fetch('/api/agents', { headers: { Authorization: 'Bearer your-token' } }).then((res) => res.json());

      // Subscribe to scheduler updates
      const stats = deferred<Record<string, unknown>>();
      socket.emit('subscribe-scheduler-updates');
      socket.on('scheduler:status', (data: { stats: Record<string, unknown> }) => stats.resolve(data.stats));
      expect(await stats.promise).toMatchObject({ isRunning: true, scheduledTasksCount: 2, maxConcurrentAgents: 5 });

      // Check individual agent schedules
      const lines: string[] = [];
      for (const agent of agents.data) {
        const schedule = await fetch(`/api/agents/${agent.id}/schedule`, { headers: { Authorization: 'Bearer your-token' } }).then((res) => res.json());
        if (schedule.data.scheduleEnabled) lines.push(`${agent.name} next runs at: ${schedule.data.nextRunAt}`);
      }
      expect(lines).toHaveLength(2);
      expect(lines[0]).toMatch(/^writer agent next runs at: \d{4}-\d\d-\d\dT\d\d:\d\d:00\.000Z$/);
      expect(lines[1]).toMatch(/^reviewer agent next runs at: \d{4}-\d\d-\d\dT09:00:00\.000Z$/);
    } finally {
      socket.close();
    }
  });
});
