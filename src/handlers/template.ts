import { badRequest } from '../core/errors.ts';

/** The variables an `llm` prompt or system text may use (CONTRACT §9), in the order error texts list them. */
export const TEMPLATE_VARIABLES = ['agentId', 'agentName', 'runId', 'scheduledAt', 'attempt', 'lastOutput'] as const;
export type TemplateVariable = (typeof TEMPLATE_VARIABLES)[number];

/** `{{name}}`, with whitespace allowed inside the braces: `{{ agentId }}`. Anything between the braces is a name. */
const PLACEHOLDER = /\{\{\s*([^{}]*?)\s*\}\}/g;

const KNOWN = new Set<string>(TEMPLATE_VARIABLES);
const EXPECTED = TEMPLATE_VARIABLES.map((v) => `{{${v}}}`).join(', ');

/** Refuses (400, naming `field`) a template that uses a name outside TEMPLATE_VARIABLES. */
export function checkTemplate(field: string, template: string): void {
  for (const [, name] of template.matchAll(PLACEHOLDER)) {
    if (!KNOWN.has(name!)) throw badRequest(`${field}: unknown template variable "{{${name}}}" (expected one of ${EXPECTED})`);
  }
}

/** Whether `template` uses `name`, so a costly value (`lastOutput` is a store read) is fetched only when asked for. */
export function usesVariable(template: string, name: TemplateVariable): boolean {
  for (const [, found] of template.matchAll(PLACEHOLDER)) if (found === name) return true;
  return false;
}

/**
 * Fills every known placeholder in one pass, so a value that itself holds `{{…}}` (a previous output
 * quoting a template) is inserted as it is, never expanded again. Unknown names, refused on save, stay as written.
 */
export function fillTemplate(template: string, values: Readonly<Record<TemplateVariable, string>>): string {
  return template.replace(PLACEHOLDER, (whole, name: string) => (KNOWN.has(name) ? values[name as TemplateVariable] : whole));
}
