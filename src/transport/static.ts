import { existsSync, readdirSync, readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { extname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DomainError, notFound } from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';
import { sendError } from './rest/reply.ts';

/**
 * The web dashboard (README "Dashboard"): the files `npm run build:web` writes to web/dist, read into memory
 * once when the server is created. Only names in that map are served, so no request path reaches the file
 * system (no traversal). `/` is never cached (a new build must show at once); `/assets/*` carry a content hash
 * in their names, so they are cached for good. The page loads nothing from anywhere else: the CSP says so.
 */
export interface StaticOptions {
  logger: Logger;
  /** @default web/dist next to the package */
  dir?: URL;
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json',
  '.map': 'application/json',
  '.woff2': 'font/woff2',
};

/** `'self'` covers the page's own ws:/wss: origin too (CSP Level 3): the typed client's WebSocket reaches this server and nothing else. */
export const DASHBOARD_CSP = "default-src 'self'; connect-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'";
const NOT_BUILT = '<!doctype html><meta charset="utf-8"><title>Dashboard not built</title><p>Dashboard not built: run npm run build:web</p>';

interface File { body: Buffer; type: string }

/** Every file under `dir`, by URL path (`/index.html`, `/assets/index-abc.js`). */
function load(dir: URL): Map<string, File> {
  const files = new Map<string, File>();
  const root = fileURLToPath(dir);
  if (!existsSync(root)) return files;
  for (const entry of readdirSync(root, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const full = join(entry.parentPath, entry.name);
    files.set(`/${relative(root, full).split(sep).join('/')}`, { body: readFileSync(full), type: TYPES[extname(entry.name)] ?? 'application/octet-stream' });
  }
  return files;
}

export function createStaticHandler({ logger, dir = new URL('../../web/dist/', import.meta.url) }: StaticOptions) {
  const files = load(dir);
  return (req: IncomingMessage, res: ServerResponse, url: URL): void => {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD');
      return sendError(res, new DomainError('METHOD_NOT_ALLOWED', `Method ${req.method} is not allowed on ${url.pathname} (allowed: GET, HEAD)`), logger);
    }
    const isIndex = url.pathname === '/';
    const file = files.get(isIndex ? '/index.html' : url.pathname);
    if (!file) {
      if (!isIndex) return sendError(res, notFound(`No such file: ${url.pathname}`), logger);
      res.writeHead(503, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-cache' });
      return void res.end(req.method === 'HEAD' ? undefined : NOT_BUILT);
    }
    res.writeHead(200, {
      'content-type': file.type,
      'content-length': String(file.body.length),
      'cache-control': isIndex ? 'no-cache' : 'public, max-age=31536000, immutable',
      'content-security-policy': DASHBOARD_CSP,
      'x-content-type-options': 'nosniff',
    });
    res.end(req.method === 'HEAD' ? undefined : file.body);
  };
}
