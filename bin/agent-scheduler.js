#!/usr/bin/env node
// `agent-scheduler`: the package's command line. The sources are TypeScript, run as they are with tsx
// (as `npm start` does), registered here so a plain `node` can start the installed package from any folder.
import { fileURLToPath } from 'node:url';
import { register } from 'tsx/esm/api';

// The package's own tsconfig, not whatever the current folder holds.
register({ tsconfig: fileURLToPath(new URL('../tsconfig.json', import.meta.url)) });
await import('../src/cli/main.ts');
