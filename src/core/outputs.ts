import { OUTPUT_MAX_BYTES } from './limits.ts';
import type { UsageReport } from './handlers.ts';
import type { RunRecord } from './store.ts';

/** What a run produced and used (CONTRACT §9), as it is kept and as answers and events carry it. */

const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder();

/**
 * A handler's answer as a run's output: a string as it is, anything else JSON-serialised (null when there is
 * nothing), cut at OUTPUT_MAX_BYTES of UTF-8 on a character boundary.
 */
export function outputOf(value: unknown): { output: string | null; truncated: boolean } {
  if (value === undefined || value === null) return { output: null, truncated: false };
  let text: string;
  if (typeof value === 'string') text = value;
  else {
    try {
      text = JSON.stringify(value) ?? String(value);
    } catch {
      text = String(value);
    }
  }
  // A UTF-8 character is at most 4 bytes: a text this short cannot be over the cap.
  if (text.length * 3 <= OUTPUT_MAX_BYTES) return { output: text, truncated: false };
  const bytes = utf8.encode(text);
  if (bytes.length <= OUTPUT_MAX_BYTES) return { output: text, truncated: false };
  let end = OUTPUT_MAX_BYTES;
  while (end > 0 && (bytes[end]! & 0xc0) === 0x80) end--; // back to the start of the character cut in two
  return { output: fromUtf8.decode(bytes.subarray(0, end)), truncated: true };
}

/** A run's usage as events and answers carry it: null when nothing was reported. */
export function usageOf(run: RunRecord): RunUsage | null {
  if (run.usageModel === null) return null;
  return { model: run.usageModel, inputTokens: run.inputTokens ?? 0, outputTokens: run.outputTokens ?? 0, costUsd: run.costUsd };
}
export interface RunUsage {
  model: string;
  inputTokens: number;
  outputTokens: number;
  costUsd: number | null;
}

/** USD per million tokens, by model (LLM_PRICES). */
export type Prices = Readonly<Record<string, { inputPerMTok: number; outputPerMTok: number }>>;

/** A reported token count as kept: a whole number, 0 for anything else. */
export const tokens = (n: unknown): number => (typeof n === 'number' && Number.isFinite(n) && n > 0 ? Math.round(n) : 0);

/**
 * The price of `model`: its own entry, else the longest entry it starts with followed by `-`, `:` or `@` — a
 * hosted API answers `gpt-4o-mini-2024-07-18` for `gpt-4o-mini`, Ollama `llama3.2:latest` for `llama3.2`.
 */
export function priceOf(model: string, prices: Prices): Prices[string] | undefined {
  if (Object.hasOwn(prices, model)) return prices[model];
  let best: string | undefined;
  for (const name of Object.keys(prices)) {
    if (model.length > name.length && model.startsWith(name) && '-:@'.includes(model[name.length]!) && (!best || name.length > best.length)) best = name;
  }
  return best === undefined ? undefined : prices[best];
}

/** A report's cost: as given, else from `prices` for its model (see `priceOf`), else null. */
export function costOf(usage: UsageReport, prices: Prices): number | null {
  if (typeof usage.costUsd === 'number' && Number.isFinite(usage.costUsd) && usage.costUsd >= 0) return usage.costUsd;
  const price = priceOf(usage.model, prices);
  if (!price) return null;
  return (tokens(usage.inputTokens) * price.inputPerMTok + tokens(usage.outputTokens) * price.outputPerMTok) / 1_000_000;
}
