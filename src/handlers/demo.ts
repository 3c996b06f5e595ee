import { z } from 'zod';
import type { HandlerDefinition } from '../core/handlers.ts';

/** The built-in `demo` handler (README, "Concepts"): `steps` steps of `stepMs` each, failing its first `failTimes` attempts. */
export const demoConfig = z.strictObject({
  steps: z.int().min(1).max(10_000).default(4),
  stepMs: z.int().min(0).max(3_600_000).default(250),
  failTimes: z.int().min(0).max(1000).default(0),
});
export type DemoConfig = z.output<typeof demoConfig>;

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const t = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal.reason);
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

export const demoHandler: HandlerDefinition<DemoConfig> = {
  name: 'demo',
  config: demoConfig,
  async run(ctx) {
    const { steps, stepMs, failTimes } = ctx.config;
    for (let i = 1; i <= steps; i++) {
      await sleep(stepMs, ctx.signal);
      if (i === Math.ceil(steps / 2) && ctx.attempt <= failTimes) throw new Error(`demo failure (attempt ${ctx.attempt})`);
      ctx.progress({ progress: Math.round((100 * i) / steps), message: `Step ${i} of ${steps}`, currentStep: String(i), totalSteps: steps });
    }
  },
};
