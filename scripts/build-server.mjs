// `npm start` runs the server as one JavaScript file built from src/ (dist/server/node.mjs), not through tsx:
// a process that transpiles TypeScript as it loads holds ~55 MB more (tsx's loader and the sources it
// compiled) and starts slower. The build takes a few tens of milliseconds, so `npm start` builds every time
// and the file is never older than the sources; `npm install` builds it too (postinstall), so it is there.
// Packages stay imports of node_modules; dist/server/ is two folders below the project, like every file in
// src/<folder>/, so the paths the sources resolve from their own location (web/dist, package.json) still hold.
import { build } from 'esbuild';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
await build({
  absWorkingDir: root,
  entryPoints: ['src/runtime/node.ts'],
  outfile: 'dist/server/node.mjs',
  bundle: true,
  packages: 'external',
  platform: 'node',
  format: 'esm',
  target: 'node20',
  sourcemap: 'linked',
  logLevel: 'warning',
});
