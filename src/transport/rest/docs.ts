import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { DomainError } from '../../core/errors.ts';

/**
 * `GET /api/docs`: Swagger UI over `/api/openapi.json`, served from the installed swagger-ui-dist
 * package (no CDN: users run this offline). Files are read once and kept.
 */
const ASSETS: Record<string, string> = {
  'swagger-ui.css': 'text/css; charset=utf-8',
  'swagger-ui-bundle.js': 'application/javascript; charset=utf-8',
  'swagger-ui-standalone-preset.js': 'application/javascript; charset=utf-8',
};

const PAGE = `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Agent Scheduler API</title><link rel="stylesheet" href="/api/docs/swagger-ui.css"></head>
<body><div id="ui"></div>
<script src="/api/docs/swagger-ui-bundle.js"></script>
<script src="/api/docs/swagger-ui-standalone-preset.js"></script>
<script src="/api/docs/init.js"></script>
</body></html>`;

const INIT = `window.ui = SwaggerUIBundle({ url: '/api/openapi.json', dom_id: '#ui', presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset], layout: 'StandaloneLayout', persistAuthorization: true });`;

let folder: string | undefined;
const cache = new Map<string, Buffer>();

function asset(name: string): Buffer {
  let body = cache.get(name);
  if (!body) {
    folder ??= dirname(createRequire(import.meta.url).resolve('swagger-ui-dist/package.json'));
    body = readFileSync(join(folder, name));
    cache.set(name, body);
  }
  return body;
}

export function serveDocs(_req: IncomingMessage, res: ServerResponse, path: string): boolean {
  const send = (type: string, body: string | Buffer) => {
    res.writeHead(200, { 'content-type': type, 'content-length': Buffer.byteLength(body), 'cache-control': 'public, max-age=3600' });
    res.end(body);
  };
  if (path === '/api/docs' || path === '/api/docs/') {
    send('text/html; charset=utf-8', PAGE);
    return true;
  }
  if (path === '/api/docs/init.js') {
    send('application/javascript; charset=utf-8', INIT);
    return true;
  }
  const name = path.slice('/api/docs/'.length);
  const type = ASSETS[name];
  if (!type) throw new DomainError('NOT_FOUND', `No route for GET ${path}`);
  send(type, asset(name));
  return true;
}
