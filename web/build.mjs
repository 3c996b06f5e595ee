// `npm install` builds the dashboard (the package's postinstall), so `npm start` serves it with no other step.
// A production install (`npm install --omit=dev`) has no Vite: it skips the build and says how to make one,
// rather than failing the install; the server then answers `/` with a 503 naming `npm run build:web`.
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
let vite;
try {
  vite = join(dirname(require.resolve('vite/package.json')), 'bin/vite.js');
} catch {
  console.log('agent-scheduler: Vite is not installed (a production install), so the dashboard was not built; run `npm run build:web` where devDependencies are installed.');
  process.exit(0);
}
execFileSync(process.execPath, [vite, 'build', '--logLevel', 'warn', '--config', fileURLToPath(new URL('./vite.config.ts', import.meta.url))], { stdio: 'inherit' });
