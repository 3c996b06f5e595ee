import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createManualClock } from '../src/core/clock.ts';
import { at, nextEvent, startServer, tempDir } from './harness.ts';

/**
 * A pause with a note and an end (CONTRACT §11): `PATCH …/pause { note?, until? }`; `until` resumes the job by
 * itself then (`agent:resumed`), across a restart too; the note shows in `taskDetails` and the paused list.
 */
const HOUR = 60 * 60_000;

describe('pause with a note and an end', () => {
  it('shows the note and the end, and resumes by itself at `until`', async () => {
    const clock = createManualClock(at('2026-01-01T08:00:00Z'));
    await using s = await startServer({ clock });
    await s.call('POST', '/api/agents', { body: { id: 'nightly', name: 'Nightly', handler: 'demo' } });
    await s.call('POST', '/api/agents/nightly/schedule', { body: { cronExpression: '0 * * * *' } });
    const paused = await s.call('PATCH', '/api/agents/nightly/schedule/nightly/pause', { body: { note: 'provider maintenance', until: '2026-01-01T10:30:00Z' } });
    expect(paused.status).toBe(200);

    const details = (await s.call('GET', '/api/agents/nightly/schedule')).body.data.taskDetails;
    expect(details).toMatchObject({ isPaused: true, pauseReason: 'manual', pauseNote: 'provider maintenance', pausedUntil: '2026-01-01T10:30:00.000Z' });
    expect((await s.call('GET', '/api/agents/schedule/paused')).body.data).toEqual([
      { agentId: 'nightly', jobId: 'nightly', pauseReason: 'manual', pauseNote: 'provider maintenance', pausedUntil: '2026-01-01T10:30:00.000Z' },
    ]);

    // No fire while paused: 09:00 and 10:00 pass; at 10:30 it resumes, and 11:00 is its next fire.
    const resumed = nextEvent(s.app, (e) => e.type === 'agent:resumed');
    clock.advance(2.5 * HOUR);
    expect((await resumed).data).toMatchObject({ agentId: 'nightly', jobId: 'nightly', status: 'resumed', nextRunAt: '2026-01-01T11:00:00.000Z' });
    const after = (await s.call('GET', '/api/agents/nightly/schedule')).body.data.taskDetails;
    expect(after).toMatchObject({ isPaused: false, pauseReason: null, pauseNote: null, pausedUntil: null });
    expect((await s.call('GET', '/api/agents/nightly/runs')).body.data).toEqual([]);
  });

  it('takes a new note and end when paused again, and a pause without them never ends by itself', async () => {
    const clock = createManualClock(at('2026-01-01T08:00:00Z'));
    await using s = await startServer({ clock });
    await s.call('POST', '/api/agents', { body: { id: 'a', name: 'A', handler: 'demo' } });
    await s.call('POST', '/api/agents/a/schedule', { body: { cronExpression: '0 * * * *' } });
    await s.call('PATCH', '/api/agents/a/schedule/a/pause', { body: { note: 'first', until: '2026-01-01T09:00:00Z' } });
    await s.call('PATCH', '/api/agents/a/schedule/a/pause', { body: { note: 'until further notice' } });
    expect((await s.call('GET', '/api/agents/a/schedule')).body.data.taskDetails).toMatchObject({ isPaused: true, pauseNote: 'until further notice', pausedUntil: null });
    clock.advance(3 * HOUR);
    await s.app.scheduler.settled();
    expect((await s.call('GET', '/api/agents/a/schedule')).body.data.taskDetails).toMatchObject({ isPaused: true });
  });

  it('refuses an end in the past, a bad date, a long note or an unknown field, naming it', async () => {
    const clock = createManualClock(at('2026-01-01T08:00:00Z'));
    await using s = await startServer({ clock });
    await s.call('POST', '/api/agents', { body: { id: 'a', name: 'A', handler: 'demo' } });
    await s.call('POST', '/api/agents/a/schedule', { body: { cronExpression: '0 * * * *' } });
    const cases: [unknown, RegExp][] = [
      [{ until: '2026-01-01T07:59:59Z' }, /^body\.until: expected a time in the future/],
      [{ until: 'tomorrow' }, /^body\.until: expected an ISO 8601 date-time/],
      [{ note: 'x'.repeat(501) }, /^body\.note: expected at most 500 characters/],
      [{ reason: 'typo' }, /unknown field "reason"/],
    ];
    for (const [body, message] of cases) {
      const bad = await s.call('PATCH', '/api/agents/a/schedule/a/pause', { body });
      expect(bad.status, JSON.stringify(body)).toBe(400);
      expect(bad.body.error).toMatch(message);
    }
    expect((await s.call('GET', '/api/agents/a/schedule')).body.data.taskDetails.isPaused).toBe(false);
  });

  it('resumes at `until` across a restart', async () => {
    using dir = tempDir();
    const dbFile = join(dir.path, 'pause.db');
    const clock = createManualClock(at('2026-01-01T08:00:00Z'));
    {
      await using s = await startServer({ clock, dbFile });
      await s.call('POST', '/api/agents', { body: { id: 'a', name: 'A', handler: 'demo' } });
      await s.call('POST', '/api/agents/a/schedule', { body: { cronExpression: '0 0 * * *' } });
      await s.call('PATCH', '/api/agents/a/schedule/a/pause', { body: { note: 'deploy', until: '2026-01-01T09:00:00Z' } });
    }
    clock.advance(2 * HOUR); // down past the end of the pause
    await using s2 = await startServer({ clock, dbFile });
    // The end passed while no process ran: the resume is due at once (a manual clock fires what is due when told to).
    await expect.poll(async () => {
      clock.advance(0);
      return (await s2.call('GET', '/api/agents/a/schedule')).body.data.taskDetails;
    }).toMatchObject({ isPaused: false, pauseNote: null });
    expect((await s2.call('GET', '/api/agents/a/schedule')).body.data.nextRunAt).toBe('2026-01-02T00:00:00.000Z');
  });
});
