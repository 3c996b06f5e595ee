/**
 * Table shapes as Kysely sees them. Times are integer milliseconds since the epoch, booleans are
 * 0/1 integers and JSON is text, so the same rows and SQL serve SQLite and PostgreSQL alike.
 */
export interface AgentsTable {
  id: string;
  owner: string;
  name: string;
  handler: string;
  config: string;
  description: string | null;
  timeout_ms: number | null;
  max_retries: number | null;
  status: string;
  last_run_at: number | null;
  last_error: string | null;
  retry_count: number;
  backoff_until: number | null;
  created_at: number;
  updated_at: number;
}

export interface SchedulesTable {
  agent_id: string;
  job_id: string;
  expression: string;
  timezone: string;
  priority: number;
  enabled: number;
  paused: number;
  catch_up: number;
  next_run_at: number | null;
  created_at: number;
  updated_at: number;
}

export interface RunsTable {
  id: string;
  agent_id: string;
  job_id: string;
  trigger: string;
  attempt: number;
  status: string;
  priority: number;
  scheduled_at: number;
  started_at: number | null;
  finished_at: number | null;
  duration_ms: number | null;
  progress: number | null;
  error: string | null;
  dedupe_key: string | null;
  created_at: number;
}

export interface EventsTable {
  id: number;
  type: string;
  agent_id: string | null;
  data: string;
  created_at: number;
}

export interface Database {
  agents: AgentsTable;
  schedules: SchedulesTable;
  runs: RunsTable;
  events: EventsTable;
}
