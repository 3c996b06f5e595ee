import { ESLint } from 'eslint';
import { describe, expect, it } from 'vitest';

describe('architecture lint', () => {
  const eslint = new ESLint();
  const errorsFor = async (filePath: string, code: string) =>
    (await eslint.lintText(code, { filePath }))[0]!.messages.filter((m) => m.ruleId === 'no-restricted-imports' || m.ruleId === 'no-restricted-globals');

  it('walls core/ off from runtime modules, drivers and outer layers', async () => {
    expect(await errorsFor('src/core/probe.ts', "import { readFileSync } from 'node:fs';\nexport const x = readFileSync;\n")).toHaveLength(1);
    expect(await errorsFor('src/core/probe.ts', "import Database from 'better-sqlite3';\nexport const x = Database;\n")).toHaveLength(1);
    expect(await errorsFor('src/core/probe.ts', "import { createApp } from '../app.ts';\nexport const x = createApp;\n")).toHaveLength(1);
    expect(await errorsFor('src/core/probe.ts', 'export const x = process.env;\n')).toHaveLength(1);
    expect(await errorsFor('src/core/probe.ts', "import { z } from 'zod';\nexport const x = z;\n")).toHaveLength(0);
  });

  it('lets runtime/ use Node built-ins but not services/', async () => {
    expect(await errorsFor('src/runtime/probe.ts', "import { readFileSync } from 'node:fs';\nexport const x = readFileSync;\n")).toHaveLength(0);
    expect(await errorsFor('src/services/probe.ts', "import { readFileSync } from 'node:fs';\nexport const x = readFileSync;\n")).toHaveLength(1);
  });
});
