import { defineConfig } from 'vite';

/**
 * The dashboard's build (README "Dashboard"): Preact TSX through Vite's own oxc transform (no plugin),
 * everything bundled into web/dist, which the server serves at `/` (src/transport/static.ts).
 */
export default defineConfig({
  root: import.meta.dirname,
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  build: { outDir: 'dist', emptyOutDir: true },
});
