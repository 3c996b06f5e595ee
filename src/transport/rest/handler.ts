import type { IncomingMessage, ServerResponse } from 'node:http';
import { DomainError, toDomainError } from '../../core/errors.ts';
import type { Logger } from '../../core/logger.ts';
import { bearerToken, type Auth } from '../../services/auth.ts';
import type { Services } from '../../services/services.ts';
import { ERROR_MAP } from '../errors.ts';
import { parseInput } from '../validation.ts';
import { serveDocs } from './docs.ts';
import { openApiDocument } from './openapi.ts';
import { matchRoute } from './routes.ts';

/** Request bodies past this are refused with 413 (CONTRACT §7). */
export const MAX_BODY_BYTES = 1024 * 1024;

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const payload = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(payload), ...headers });
  res.end(payload);
}

export function sendError(res: ServerResponse, err: unknown, logger: Logger): void {
  const e = toDomainError(err);
  if (e.code === 'INTERNAL') logger.error('request failed', { error: e.cause instanceof Error ? e.cause.message : String(e.cause) });
  const headers: Record<string, string> = {};
  if (e.code === 'UNAUTHORIZED') headers['www-authenticate'] = 'Bearer';
  if (e.code === 'PAYLOAD_TOO_LARGE') headers['connection'] = 'close';
  sendJson(res, ERROR_MAP[e.code].http, { success: false, error: e.message }, headers);
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > MAX_BODY_BYTES) return reject(new DomainError('PAYLOAD_TOO_LARGE', `Request body is larger than ${MAX_BODY_BYTES} bytes`));
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        req.removeAllListeners('data');
        req.resume(); // drain without keeping it
        reject(new DomainError('PAYLOAD_TOO_LARGE', `Request body is larger than ${MAX_BODY_BYTES} bytes`));
      } else chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function parseJson(raw: Buffer): unknown {
  const text = raw.toString('utf8');
  if (text.trim() === '') return undefined;
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new DomainError('BAD_REQUEST', `Malformed JSON body: ${err instanceof Error ? err.message : String(err)}`);
  }
}

export interface RestDeps {
  services: Services;
  auth: Auth;
  logger: Logger;
}

/** Serves `/api/*` from the route table. */
export function createRestHandler({ services, auth, logger }: RestDeps) {
  return async function handleRest(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    try {
      const method = req.method ?? 'GET';
      if (method === 'GET' && url.pathname === '/api/openapi.json') return sendJson(res, 200, openApiDocument());
      if (method === 'GET' && (url.pathname === '/api/docs' || url.pathname.startsWith('/api/docs/'))) return void serveDocs(req, res, url.pathname);
      const match = matchRoute(method, url.pathname);
      if (!match) throw new DomainError('NOT_FOUND', `No route for ${method} ${url.pathname}`);
      if ('allowed' in match) {
        res.setHeader('allow', match.allowed.join(', '));
        throw new DomainError('METHOD_NOT_ALLOWED', `Method ${method} is not allowed on ${url.pathname} (allowed: ${match.allowed.join(', ')})`);
      }
      const { route, params } = match;
      const principal = route.auth === false ? { sub: 'anonymous', admin: false } : await auth.verify(bearerToken(req.headers.authorization));
      const raw = method === 'GET' || method === 'DELETE' ? undefined : parseJson(await readBody(req));
      const input = {
        params: route.params ? parseInput(route.params, params) : {},
        query: route.query ? parseInput(route.query, Object.fromEntries(url.searchParams), 'query') : {},
        body: route.body ? parseInput(route.body, raw ?? {}, 'body') : undefined,
      };
      const result = await route.handle({ principal, services }, input);
      const body: Record<string, unknown> = { success: true, data: result.data };
      if (result.message !== undefined) body['message'] = result.message;
      sendJson(res, result.status ?? route.status, body);
    } catch (err) {
      sendError(res, err, logger);
    }
  };
}
