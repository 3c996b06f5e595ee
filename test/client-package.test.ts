import { execFile } from 'node:child_process';
import { copyFileSync, mkdirSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { startServer, tempDir } from './harness.ts';

/**
 * The typed client as a user outside this repository gets it (README "Typed client"): built with
 * `npm run build:client`'s config, packed with `npm pack`, unpacked into a fresh project's node_modules,
 * type-checked there with nothing of this repository's sources in reach, and run against a real server.
 * Its dependencies are linked from this repository's node_modules, so nothing is downloaded.
 */

const run = promisify(execFile);
const root = fileURLToPath(new URL('..', import.meta.url));
const tsc = join(root, 'node_modules/typescript/bin/tsc');
/** What the package asks for at run time or in its types, plus what the consumer itself imports (ws and its types). */
const LINKED = ['@trpc/client', '@trpc/server', 'superjson', 'zod', 'ws', '@types/node', '@types/ws'];

/**
 * The consumer. The `@ts-expect-error` lines fail the type check if they are not errors, so they prove the
 * router's types came through the package (were they `any`, nothing would be an error).
 */
const CONSUMER = `import { createSchedulerClient, type AgentCreateInput } from '@agent-scheduler/client';
import WebSocket from 'ws';

const [url, token] = process.argv.slice(2) as [string, string];
// ws's WebSocket is accepted as it is (Node 20 has none of its own).
const client = createSchedulerClient<{ resize: { width: number } }>({ url, token, WebSocket });

// @ts-expect-error: not a handler this client knows
export const unknownHandler: AgentCreateInput = { name: 'x', handler: 'no-such-handler' };
// @ts-expect-error: demo's steps is a number
export const badConfig: AgentCreateInput = { name: 'x', handler: 'demo', config: { steps: 'four' } };
export const custom: AgentCreateInput<{ resize: { width: number } }> = { name: 'x', handler: 'resize', config: { width: 640 } };

try {
  const agent = await client.agents.create.mutate({ id: 'from-package', name: 'From the package', handler: 'demo', config: { steps: 2, stepMs: 0 } });
  const status = await client.scheduler.status.query();
  const max: number = status.maxConcurrentAgents;
  const events: string[] = [];
  await new Promise<void>((resolve, reject) => {
    const sub = client.events.agent.subscribe({ agentId: agent.id }, {
      onStarted: () => void client.agents.run.mutate({ agentId: agent.id }).catch(reject),
      onData: (e) => {
        events.push(e.data.type);
        if (e.data.type === 'agent:completed') {
          sub.unsubscribe();
          resolve();
        }
      },
      onError: reject,
    });
  });
  console.log(JSON.stringify({ id: agent.id, status: agent.status, max, events }));
} finally {
  await client.close();
}
`;

const CONSUMER_TSCONFIG = {
  compilerOptions: {
    target: 'ES2022',
    module: 'NodeNext',
    moduleResolution: 'NodeNext',
    lib: ['ES2023', 'ESNext.Disposable', 'DOM'],
    types: ['node'],
    strict: true,
    noUncheckedIndexedAccess: true,
    // The package's declarations are checked too: a user with skipLibCheck off must not see errors in them.
    skipLibCheck: false,
    rootDir: '.',
    outDir: 'out',
  },
  files: ['consumer.ts'],
};

function link(nodeModules: string, name: string) {
  const at = join(nodeModules, name);
  mkdirSync(dirname(at), { recursive: true });
  symlinkSync(join(root, 'node_modules', name), at, 'dir');
}

describe('the client package', () => {
  it('builds, packs and works from a project outside this repository, with full types', { timeout: 120_000 }, async () => {
    using dir = tempDir();
    // Build into a copy of the package folder, so the repository's own client/dist is never touched.
    const pkg = join(dir.path, 'package');
    mkdirSync(pkg);
    copyFileSync(join(root, 'client/package.json'), join(pkg, 'package.json'));
    await run(process.execPath, [tsc, '-p', join(root, 'client/tsconfig.build.json'), '--outDir', join(pkg, 'dist')], { cwd: root });

    const packed = await run('npm', ['pack', '--json', '--pack-destination', dir.path], { cwd: pkg, env: { ...process.env, npm_config_update_notifier: 'false' } });
    const [info] = JSON.parse(packed.stdout) as [{ filename: string; files: { path: string }[] }];
    const files = info.files.map((f) => f.path);
    expect(files).toContain('dist/client/index.js');
    expect(files).toContain('dist/client/index.d.ts');
    expect(files).toContain('dist/src/transport/trpc/router.d.ts');
    // The server's JavaScript stays out: the package is the client, the server only lends it types.
    expect(files.filter((f) => f.endsWith('.js') && !f.startsWith('dist/client/'))).toEqual([]);

    const consumer = join(dir.path, 'consumer');
    const installed = join(consumer, 'node_modules/@agent-scheduler/client');
    mkdirSync(installed, { recursive: true });
    await run('tar', ['-xzf', join(dir.path, info.filename), '-C', installed, '--strip-components=1']);
    expect(readdirSync(installed).sort()).toEqual(['dist', 'package.json']);
    for (const name of LINKED) link(join(consumer, 'node_modules'), name);
    writeFileSync(join(consumer, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
    writeFileSync(join(consumer, 'tsconfig.json'), JSON.stringify(CONSUMER_TSCONFIG));
    writeFileSync(join(consumer, 'consumer.ts'), CONSUMER);

    // Type-checks and emits; a failed check (or an unused @ts-expect-error) rejects with tsc's output.
    const checked = await run(process.execPath, [tsc, '-p', consumer], { cwd: consumer }).catch((err: { stdout?: string }) => {
      throw new Error(`consumer type check failed:\n${err.stdout ?? String(err)}`);
    });
    expect(checked.stdout).toBe('');

    await using s = await startServer();
    const out = await run(process.execPath, [join(consumer, 'out/consumer.js'), s.url, await s.token()], { cwd: consumer });
    const result = JSON.parse(out.stdout.trim()) as { id: string; status: string; max: number; events: string[] };
    expect(result).toMatchObject({ id: 'from-package', status: 'IDLE', max: 5 });
    expect(result.events).toContain('agent:progress');
    expect(result.events.at(-1)).toBe('agent:completed');
  });
});
