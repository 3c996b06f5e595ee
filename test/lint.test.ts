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

  it('keeps services/ and transport/ off storage/: they depend on the Store port', async () => {
    const repo = "import { createRepository } from '../storage/repository.ts';\nexport const x = createRepository;\n";
    expect(await errorsFor('src/services/probe.ts', repo)).toHaveLength(1);
    expect(await errorsFor('src/transport/probe.ts', repo)).toHaveLength(1);
    expect(await errorsFor('src/transport/rest/probe.ts', "import type { Repository } from '../../storage/repository.ts';\nexport type X = Repository;\n")).toHaveLength(1);
    expect(await errorsFor('src/services/probe.ts', "import type { Store } from '../core/store.ts';\nexport type X = Store;\n")).toHaveLength(0);
    // app.ts is the composition root: it alone wires the repository in.
    expect(await errorsFor('src/app.ts', repo.replace('../storage', './storage'))).toHaveLength(0);
  });

  it('routes transport/ through services/: no scheduler, no event bus', async () => {
    expect(await errorsFor('src/transport/probe.ts', "import type { EventBus } from '../core/events.ts';\nexport type X = EventBus;\n")).toHaveLength(1);
    expect(await errorsFor('src/transport/trpc/probe.ts', "import type { Scheduler } from '../../core/scheduler.ts';\nexport type X = Scheduler;\n")).toHaveLength(1);
    expect(await errorsFor('src/transport/probe.ts', "import type { EventsService } from '../services/events.ts';\nexport type X = EventsService;\n")).toHaveLength(0);
    expect(await errorsFor('src/transport/probe.ts', "import { MAX_BODY_BYTES } from '../core/limits.ts';\nexport const x = MAX_BODY_BYTES;\n")).toHaveLength(0);
  });

  it('keeps services/ under the transports', async () => {
    expect(await errorsFor('src/services/probe.ts', "import { ERROR_MAP } from '../transport/errors.ts';\nexport const x = ERROR_MAP;\n")).toHaveLength(1);
    expect(await errorsFor('src/services/probe.ts', "import { createApp } from '../app.ts';\nexport const x = createApp;\n")).toHaveLength(1);
  });

  it('lets runtime/ use Node built-ins but not services/', async () => {
    expect(await errorsFor('src/runtime/probe.ts', "import { readFileSync } from 'node:fs';\nexport const x = readFileSync;\n")).toHaveLength(0);
    expect(await errorsFor('src/services/probe.ts', "import { readFileSync } from 'node:fs';\nexport const x = readFileSync;\n")).toHaveLength(1);
  });
});
