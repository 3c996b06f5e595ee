import { STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http';
import { DomainError, toDomainError } from '../../core/errors.ts';
import { MAX_BODY_BYTES } from '../../core/limits.ts';
import type { Logger } from '../../core/logger.ts';
import { ERROR_MAP } from '../errors.ts';

/** Reading requests and writing answers for plain `node:http`: JSON in, JSON out, errors through the one table. */
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

/**
 * A whole HTTP/1.1 error answer as bytes, in the same envelope, for a connection refused before (or instead
 * of) a request object: a timed-out or oversized request head, a malformed request. It always closes the connection.
 */
export function rawErrorResponse(status: number, message: string): string {
  const payload = JSON.stringify({ success: false, error: message });
  return (
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}\r\n` +
    'content-type: application/json; charset=utf-8\r\n' +
    `content-length: ${Buffer.byteLength(payload)}\r\n` +
    'connection: close\r\n\r\n' +
    payload
  );
}

const tooLarge = () => new DomainError('PAYLOAD_TOO_LARGE', `Request body is larger than ${MAX_BODY_BYTES} bytes`);

/** The request body, refused with 413 past `MAX_BODY_BYTES` (declared or actual). */
export function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > MAX_BODY_BYTES) return reject(tooLarge());
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        req.removeAllListeners('data');
        req.resume(); // drain without keeping it
        reject(tooLarge());
      } else chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
    // A connection closed before the body ended (a request timeout, a client gone) ends the wait too.
    req.on('close', () => {
      if (!req.complete) reject(new DomainError('BAD_REQUEST', 'The connection closed before the request body ended'));
    });
  });
}

/** A JSON body; an empty one is `undefined`, a malformed one a 400 that says why. */
export function parseJson(raw: Buffer): unknown {
  const text = raw.toString('utf8');
  if (text.trim() === '') return undefined;
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new DomainError('BAD_REQUEST', `Malformed JSON body: ${err instanceof Error ? err.message : String(err)}`);
  }
}
