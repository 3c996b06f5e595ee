import { MultiBar, type SingleBar } from 'cli-progress';
import type { StreamEvent } from '../services/events.ts';
import { duration, type CliStreams } from './output.ts';

/**
 * What `watch` shows for each event: on a terminal one live bar per running run (cli-progress),
 * elsewhere one plain line per event (logs, pipes, tests), with --json the events themselves (NDJSON).
 * Each finished run also prints one line, above the bars on a terminal.
 */
export interface WatchView {
  event(e: StreamEvent): void;
  /** Leaves the terminal as it was (cursor shown, bars left drawn). */
  stop(): void;
}

export type ViewMode = 'bars' | 'lines' | 'json';

/** Agent id → name, for labels; an unknown id is shown as it is. */
export type AgentNames = Map<string, string>;

const clock = (iso: string) => iso.slice(11, 19);

/** The words for an event in one line, or undefined for events a person need not see (figures). */
function describe(e: StreamEvent): string | undefined {
  switch (e.type) {
    case 'agent:started':
      return `${e.data.runId} started (attempt ${e.data.attempt})`;
    case 'agent:progress':
      return `${e.data.runId} ${String(Math.round(e.data.progress)).padStart(3)}%${e.data.message ? ` ${e.data.message}` : ''}`;
    case 'agent:completed':
      return `${e.data.runId} completed in ${duration(e.data.duration)}`;
    case 'agent:failed':
      return `${e.data.runId} failed (attempt ${e.data.attempt}): ${e.data.error}${e.data.willRetry ? `; retry at ${e.data.nextRetryAt ?? 'soon'}` : ''}`;
    case 'agent:cancelled':
      return `${e.data.runId} cancelled`;
    case 'agent:paused':
      return `job ${e.data.jobId} paused`;
    case 'agent:resumed':
      return `job ${e.data.jobId} resumed; next run ${e.data.nextRunAt ?? '-'}`;
    case 'agent:budget-exceeded':
      return `budget exceeded for the ${e.data.period} ($${e.data.costUsd.toFixed(4)}, ${e.data.tokens} tokens); resumes ${e.data.resumesAt}`;
    case 'resync':
      return `some events were missed: ${e.data.reason}`;
    default:
      return undefined;
  }
}

const isEnd = (e: StreamEvent) => e.type === 'agent:completed' || e.type === 'agent:failed' || e.type === 'agent:cancelled';
const stamp = (e: StreamEvent) => ('timestamp' in e.data && typeof e.data.timestamp === 'string' ? clock(e.data.timestamp) : clock(new Date().toISOString()));

export function createWatchView(mode: ViewMode, streams: CliStreams, names: AgentNames): WatchView {
  const label = (agentId: string | null) => {
    if (agentId === null) return 'scheduler';
    const name = names.get(agentId);
    return name && name !== agentId ? `${name} (${agentId})` : agentId;
  };
  const line = (e: StreamEvent, text: string) => `${stamp(e)} ${label(e.agentId)} ${text}`;

  if (mode === 'json') {
    return { event: (e) => void streams.stdout.write(`${JSON.stringify(e)}\n`), stop() {} };
  }
  if (mode === 'lines') {
    return {
      event(e) {
        const text = describe(e);
        if (text !== undefined) streams.stdout.write(`${line(e, text)}\n`);
      },
      stop() {},
    };
  }

  const multibar = new MultiBar({
    stream: streams.stdout,
    format: '{label} {runId} [{bar}] {percentage}% {message}',
    barsize: 24,
    hideCursor: true,
    autopadding: true,
    clearOnComplete: false,
    // Redraw at most 10 times a second: a fast run's progress events need not each cost a frame.
    fps: 10,
  });
  const bars = new Map<string, SingleBar>();
  const barFor = (runId: string, agentId: string | null) => {
    let bar = bars.get(runId);
    if (!bar) {
      // Labels padded to the longest agent label, so the bars line up.
      const width = Math.max(0, ...[...names.keys()].map((id) => label(id).length));
      bar = multibar.create(100, 0, { label: label(agentId).padEnd(width), runId, message: '' });
      bars.set(runId, bar);
    }
    return bar;
  };
  return {
    event(e) {
      if (e.type === 'agent:started') barFor(e.data.runId, e.agentId).update(0, { message: `attempt ${e.data.attempt}` });
      else if (e.type === 'agent:progress') barFor(e.data.runId, e.agentId).update(e.data.progress, { message: e.data.message ?? '' });
      else if (isEnd(e) && 'runId' in e.data) {
        const bar = bars.get(e.data.runId);
        if (bar) {
          multibar.remove(bar);
          bars.delete(e.data.runId);
        }
        multibar.log(`${line(e, describe(e) ?? e.type)}\n`);
        // With no bar left cli-progress stops redrawing, and the log line waits for the next one: draw now.
        multibar.update();
      } else {
        const text = describe(e);
        if (text !== undefined) {
          multibar.log(`${line(e, text)}\n`);
          multibar.update();
        }
      }
    },
    stop: () => multibar.stop(),
  };
}
