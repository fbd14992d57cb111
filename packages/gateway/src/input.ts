import type { z } from 'zod';
import type { HttpMethod, RouteRequest } from './routes.ts';

/** What the default input reads of a request: a `RouteRequest`, or Fastify's request itself. */
export type RouteInputSource = Pick<RouteRequest, 'params' | 'query' | 'body'>;

/**
 * The default input of an action route: path parameters over the query string (GET, DELETE) or over
 * the JSON body (POST, PUT, PATCH). A query string has only strings, so a value is read as a number or
 * boolean where the contract's field is one; anything else is left for the contract to refuse.
 *
 * Made once per route: the contract's field types are read from its schema here, not per request.
 */
export function defaultInput(method: HttpMethod, schema: z.ZodType): (request: RouteInputSource) => unknown {
  if (method === 'GET' || method === 'DELETE') {
    const coerce = queryCoercer(schema);
    // No query string (the usual GET): nothing to coerce.
    return (request) =>
      isEmpty(request.query) ? { ...request.params } : { ...coerce(request.query), ...request.params };
  }
  return (request) => {
    const body = request.body;
    if (body === undefined || body === null) return { ...request.params };
    // A body that is not an object (an array, a number) goes to the contract as it is, to be refused there.
    if (typeof body !== 'object' || Array.isArray(body)) return body;
    return { ...(body as Record<string, unknown>), ...request.params };
  };
}

function isEmpty(record: Record<string, unknown>): boolean {
  for (const _ in record) return false;
  return true;
}

/** Query values read as the contract's fields expect: `?page=2` is 2 when `page` is a number. */
function queryCoercer(schema: z.ZodType): (query: Record<string, unknown>) => Record<string, unknown> {
  const shape = objectShape(schema);
  const types = new Map<string, string | undefined>();
  // Own fields only: `?constructor=x` or `?__proto__=x` must not find Object.prototype's members.
  for (const key of shape ? Object.keys(shape) : []) types.set(key, baseType(shape![key]!));
  return (query) => {
    // No prototype: a `__proto__` key in the query is a plain field here, never the object's prototype.
    const out: Record<string, unknown> = Object.create(null);
    for (const [key, value] of Object.entries(query)) {
      out[key] = types.has(key) ? coerce(types.get(key), value) : value;
    }
    return out;
  };
}

function coerce(type: string | undefined, value: unknown): unknown {
  if (typeof value !== 'string') return value;
  if (type === 'number' || type === 'int' || type === 'bigint') {
    const n = Number(value);
    return value.trim() === '' || Number.isNaN(n) ? value : n;
  }
  if (type === 'boolean') {
    if (value === 'true') return true;
    if (value === 'false') return false;
  }
  return value;
}

interface Def {
  type?: string;
  innerType?: z.ZodType;
  in?: z.ZodType;
  shape?: Record<string, z.ZodType>;
}

function defOf(schema: z.ZodType): Def {
  return (schema as unknown as { _zod: { def: Def } })._zod.def;
}

/** The field's type under optional, nullable, default and pipe wrappers. */
function baseType(schema: z.ZodType): string | undefined {
  let def = defOf(schema);
  for (let depth = 0; depth < 8; depth++) {
    const inner = def.innerType ?? (def.type === 'pipe' ? def.in : undefined);
    if (!inner) break;
    def = defOf(inner);
  }
  return def.type;
}

function objectShape(schema: z.ZodType): Record<string, z.ZodType> | undefined {
  let current = schema;
  for (let depth = 0; depth < 8; depth++) {
    const def = defOf(current);
    if (def.type === 'object') return def.shape;
    const inner = def.innerType ?? (def.type === 'pipe' ? def.in : undefined);
    if (!inner) return undefined;
    current = inner;
  }
  return undefined;
}
