import type { FastifyRequest } from 'fastify';

/** A request header's value; the first when the client sent it more than once. */
export function headerOf(request: FastifyRequest, name: string): string | undefined {
  const value = request.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

const BEARER = /^Bearer\s+(\S+)\s*$/i;

/** The token of an `Authorization: Bearer <token>` header; undefined for any other header or none. */
export function bearerToken(request: FastifyRequest): string | undefined {
  const value = request.headers.authorization;
  return value ? BEARER.exec(value)?.[1] : undefined;
}
