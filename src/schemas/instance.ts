import { z } from 'zod';
import { isoDate } from './common.ts';

/** One live server process sharing the database (README, "Running several instances"). */
export const instanceOutput = z.object({
  id: z.string(),
  host: z.string(),
  pid: z.number().int(),
  startedAt: isoDate,
  heartbeatAt: isoDate,
  /** Runs it held at its last heartbeat. */
  running: z.number().int(),
  /** Its MAX_CONCURRENT_AGENTS. */
  maxConcurrent: z.number().int(),
}).meta({ id: 'Instance' });
export type InstanceOutput = z.output<typeof instanceOutput>;
