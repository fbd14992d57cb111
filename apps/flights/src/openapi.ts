import { readFileSync } from 'node:fs';
import { parse } from 'yaml';

/**
 * The OpenAPI 3.1 documents of `openapi/`, written before the code (SEED(S)): each server serves its own
 * at `/openapi.json`, and the tests check every answer against them.
 */
export type ApiName = 'flights' | 'reservations' | 'bff';

const documents = new Map<ApiName, Record<string, unknown>>();

export function openApiDocument(name: ApiName): Record<string, unknown> {
  let document = documents.get(name);
  if (!document) {
    document = parse(readFileSync(new URL(`../openapi/${name}.yaml`, import.meta.url), 'utf8')) as Record<
      string,
      unknown
    >;
    documents.set(name, document);
  }
  return document;
}
