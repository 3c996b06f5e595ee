import type { IncomingMessage, ServerResponse } from 'node:http';
import { DomainError } from '../../core/errors.ts';
import type { Logger } from '../../core/logger.ts';
import { bearerToken, principalFor, type Auth } from '../../services/auth.ts';
import type { Services } from '../../services/services.ts';
import { parseInput } from '../validation.ts';
import { parseJson, readBody, sendError, sendJson } from './reply.ts';
import { matchRoute, type ProcedureRoute } from './routes.ts';

export interface RestDeps {
  services: Services;
  auth: Auth;
  logger: Logger;
}

/**
 * Serves every request the route table knows: a raw row answers itself; a procedure row is checked
 * (token, then path, query and body, each naming its own field in errors), called, and its answer sent
 * as `{ success: true, data, message? }`.
 */
/** The input fields a route reads from headers; an error names the header (`header Idempotency-Key: …`). */
function headerInput({ schema, names }: NonNullable<ProcedureRoute['headers']>, req: IncomingMessage): object {
  const given: Record<string, string> = {};
  for (const [field, header] of Object.entries(names)) {
    const value = req.headers[header.toLowerCase()];
    if (value !== undefined) given[field] = Array.isArray(value) ? value.join(', ') : value;
  }
  try {
    return parseInput(schema, given, 'header') as object;
  } catch (err) {
    if (err instanceof DomainError) {
      for (const [field, header] of Object.entries(names)) err.message = err.message.replace(`header.${field}:`, `header ${header}:`);
    }
    throw err;
  }
}

export function createRestHandler({ services, auth, logger }: RestDeps) {
  async function serve(route: ProcedureRoute, params: Record<string, string>, req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const { procedure } = route;
    const method = route.method;
    const principal = await principalFor(auth, procedure.access, bearerToken(req.headers.authorization));
    const raw = method === 'GET' || method === 'DELETE' ? undefined : parseJson(await readBody(req));
    const p = route.params && (parseInput(route.params, params) as object);
    const q = route.query && (parseInput(route.query, Object.fromEntries(url.searchParams), 'query') as object);
    const b = route.body && (parseInput(route.body, raw ?? {}, 'body') as object);
    const h = route.headers && headerInput(route.headers, req);
    // One part is the input as it is (the common case: nothing copied); several are merged, path last.
    const input = h === undefined && b === undefined && q === undefined ? p : h === undefined && p === undefined && q === undefined ? b : { ...h, ...b, ...q, ...p };
    const answer = await procedure.call({ principal, services }, input);
    const body: Record<string, unknown> = { success: true, data: procedure.reply ? procedure.reply(answer) : answer };
    if (route.message) body['message'] = route.message(input, answer);
    sendJson(res, route.status(answer), body);
  }

  return async function handleRest(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    try {
      const method = req.method ?? 'GET';
      const match = matchRoute(method, url.pathname);
      if (!match) throw new DomainError('NOT_FOUND', `No route for ${method} ${url.pathname}`);
      if ('allowed' in match) {
        res.setHeader('allow', match.allowed.join(', '));
        throw new DomainError('METHOD_NOT_ALLOWED', `Method ${method} is not allowed on ${url.pathname} (allowed: ${match.allowed.join(', ')})`);
      }
      const { route, params } = match;
      if (route.kind === 'raw') return route.handle(req, res, url, services);
      await serve(route, params, req, res, url);
    } catch (err) {
      sendError(res, err, logger);
    }
  };
}
