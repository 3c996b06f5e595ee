import tseslint from 'typescript-eslint';

// Runtime at the rim (STYLE.md): only runtime/ and storage/dialects/ may touch runtime-specific modules,
// and core/ depends on nothing but schemas/ and its two libraries (croner, p-queue).
// Ports, not the repository: services/ and transport/ see storage only through core/store.ts, and
// transport/ reaches the scheduler and its event bus only through services/ (README "Architecture").
const nodeBuiltins = ['node:*', 'fs', 'path', 'http', 'net', 'os', 'crypto', 'child_process', 'process', 'worker_threads'];
const drivers = ['better-sqlite3', 'pg', 'kysely', 'ws', 'socket.io', '@trpc/*', 'jose'];
const noStorage = { regex: '(^|/)storage/', message: 'Depend on the Store port (core/store.ts); app.ts wires the repository in.' };
const noOuterLayers = { regex: '(^|/)(runtime|transport)/|(^|/)app\\.ts$', message: 'services/ sit under the transports: they import neither transport/, runtime/ nor app.ts.' };
const viaServices = { regex: '(^|/)core/(events|scheduler)\\.ts$', message: 'transport/ watches and commands through services/ (services/events.ts, services/services.ts), not the scheduler or its bus.' };

export default tseslint.config(
  { ignores: ['node_modules/**', 'data/**', 'bench/results*.json', 'client/dist/**', 'web/dist/**', 'dist/**'] },
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', destructuredArrayIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/ban-ts-comment': ['error', { 'ts-ignore': 'allow-with-description' }],
    },
  },
  {
    files: ['src/core/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [
          { group: nodeBuiltins, message: 'core/ runs on any runtime: no Node built-ins (STYLE.md: runtime at the rim).' },
          { group: drivers, message: 'core/ knows no drivers or transports: depend on a port instead.' },
          { group: ['../runtime/*', '../transport/*', '../services/*', '../storage/*', '../handlers/*', '../app.ts'], message: 'core/ depends only on schemas/.' },
        ],
      }],
      'no-restricted-globals': ['error', { name: 'process', message: 'core/ never reads process: configuration comes in as options.' }, { name: 'Deno', message: 'core/ is runtime-free.' }, { name: 'Buffer', message: 'core/ is runtime-free.' }],
    },
  },
  {
    files: ['src/schemas/**/*.ts', 'src/handlers/**/*.ts', 'src/storage/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [
          { group: nodeBuiltins, message: 'Only runtime/, transport/ and storage/dialects/ touch runtime modules.' },
          { group: ['better-sqlite3', 'pg'], message: 'Drivers live in storage/dialects/.' },
        ],
      }],
      'no-restricted-globals': ['error', { name: 'process', message: 'Only runtime/ reads process.' }, { name: 'Deno', message: 'Only runtime/ touches Deno.' }],
    },
  },
  {
    files: ['src/services/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [
          { group: nodeBuiltins, message: 'Only runtime/, transport/ and storage/dialects/ touch runtime modules.' },
          { group: ['better-sqlite3', 'pg', 'kysely'], message: 'Drivers live in storage/dialects/.' },
          noStorage,
          noOuterLayers,
        ],
      }],
      'no-restricted-globals': ['error', { name: 'process', message: 'Only runtime/ reads process.' }, { name: 'Deno', message: 'Only runtime/ touches Deno.' }],
    },
  },
  {
    files: ['src/transport/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [
          { group: ['better-sqlite3', 'pg', 'kysely'], message: 'Drivers live in storage/dialects/.' },
          noStorage,
          viaServices,
          { regex: '(^|/)runtime/|(^|/)app\\.ts$', message: 'transport/ is built by app.ts; it imports neither app.ts nor runtime/.' },
        ],
      }],
      'no-restricted-globals': ['error', { name: 'process', message: 'Only runtime/ reads process.' }, { name: 'Deno', message: 'Only runtime/ touches Deno.' }],
    },
  },
  {
    files: ['client/**/*.ts'],
    rules: {
      // The router's types, and the built-in handlers' config schemas (client/typed-router.ts types `agents.create` with them).
      'no-restricted-imports': ['error', { patterns: [{ regex: '^\\.\\./src/(?!transport/trpc/router\\.ts$|handlers/(demo|webhook|llm)\\.ts$)', message: 'client/ imports only types from the server: `AppRouter` and the built-in handler configs.' }] }],
    },
  },
);
