import tseslint from 'typescript-eslint';

// Runtime at the rim (STYLE.md): only runtime/ and storage/dialects/ may touch runtime-specific modules,
// and core/ depends on nothing but schemas/ and its two libraries (croner, p-queue).
const nodeBuiltins = ['node:*', 'fs', 'path', 'http', 'net', 'os', 'crypto', 'child_process', 'process', 'worker_threads'];
const drivers = ['better-sqlite3', 'pg', 'kysely', 'ws', 'socket.io', '@trpc/*', 'jose'];

export default tseslint.config(
  { ignores: ['node_modules/**', 'data/**', 'bench/results*.json'] },
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
    files: ['src/schemas/**/*.ts', 'src/services/**/*.ts', 'src/handlers/**/*.ts', 'src/storage/repository.ts', 'src/storage/migrations.ts', 'src/storage/schema.ts'],
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
    files: ['client/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [{ regex: '^\\.\\./src/(?!transport/trpc/router\\.ts$)', message: 'client/ imports only `type AppRouter` from the server.' }] }],
    },
  },
);
