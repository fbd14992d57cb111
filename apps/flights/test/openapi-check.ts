import assert from 'node:assert/strict';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { type ApiName, openApiDocument } from '../src/openapi.ts';

/**
 * Checks answers against the OpenAPI 3.1 documents of `openapi/` (JSON Schema 2020-12, so Ajv's 2020
 * dialect reads their schemas as they are): the status must be documented for the operation, and the
 * body must match its schema. Every request the tests make goes through `apiClient`, so every answer is
 * checked.
 */
const ajv = new Ajv2020({ strict: false, allErrors: true });
addFormats.default(ajv);
const added = new Set<ApiName>();

type Json = Record<string, unknown>;

function resolve(document: Json, node: Json): { node: Json; pointer: string | undefined } {
  const ref = node.$ref;
  if (typeof ref !== 'string') return { node, pointer: undefined };
  const pointer = ref.slice(1);
  let target: unknown = document;
  for (const part of pointer.split('/').slice(1))
    target = (target as Json)[part.replaceAll('~1', '/').replaceAll('~0', '~')];
  return { node: target as Json, pointer };
}

const escapePointer = (part: string) => part.replaceAll('~', '~0').replaceAll('/', '~1');

/** Checks a value against a schema of a document, by its JSON pointer (`/components/schemas/SeatMap`). */
export function checkSchema(api: ApiName, pointer: string, value: unknown): void {
  addDocument(api);
  const validate = ajv.getSchema(`${api}#${pointer}`);
  assert.ok(validate, `${api}: no schema at ${pointer}`);
  assert.ok(validate(value), `${api}: does not match ${pointer}: ${ajv.errorsText(validate.errors)}`);
}

function addDocument(api: ApiName): void {
  if (added.has(api)) return;
  ajv.addSchema(openApiDocument(api), api);
  added.add(api);
}

export function checkAnswer(api: ApiName, method: string, url: string, status: number, body: unknown, type: string) {
  const document = openApiDocument(api);
  addDocument(api);
  const paths = document.paths as Record<string, Json>;
  const path = new URL(url, 'http://x').pathname;
  const template = Object.keys(paths).find((candidate) =>
    new RegExp(`^${candidate.replace(/\{[^}]+\}/g, '[^/]+')}$`).test(path),
  );
  assert.ok(template, `${api}: ${method} ${path} is not in openapi/${api}.yaml`);
  const operation = paths[template]![method.toLowerCase()] as Json | undefined;
  assert.ok(operation, `${api}: ${method} ${template} is not in openapi/${api}.yaml`);
  const responses = operation.responses as Record<string, Json>;
  const declared = responses[String(status)];
  assert.ok(
    declared,
    `${api}: ${method} ${template} answered ${status}, not documented (body ${JSON.stringify(body)})`,
  );
  const { node: response, pointer } = resolve(document, declared);
  const content = response.content as Record<string, Json> | undefined;
  if (!content) {
    assert.equal(body, undefined, `${api}: ${method} ${template} ${status} documents no body`);
    return;
  }
  const mediaType = type.split(';')[0]!.trim();
  assert.ok(content[mediaType], `${api}: ${method} ${template} ${status} answered ${mediaType}, not documented`);
  const base = pointer ?? `/paths/${escapePointer(template)}/${method.toLowerCase()}/responses/${status}`;
  const validate = ajv.getSchema(`${api}#${base}/content/${escapePointer(mediaType)}/schema`);
  assert.ok(validate, `${api}: no schema at ${base}`);
  assert.ok(
    validate(body),
    `${api}: ${method} ${path} ${status} does not match openapi/${api}.yaml: ${ajv.errorsText(validate.errors)}\n${JSON.stringify(body).slice(0, 500)}`,
  );
}

/** What the tests read from an answer: any JSON, its shape already checked against the document. */
// biome-ignore lint/suspicious/noExplicitAny: bodies are checked by the schema, then read freely.
export type Body = any;

export interface Answer<T = Body> {
  status: number;
  body: T;
}

/** A JSON client of one API whose every answer is checked against its document. */
export function apiClient(api: ApiName, baseUrl: string) {
  return async function request<T = Body>(
    method: string,
    path: string,
    options: { body?: unknown; token?: string; rawBody?: string } = {},
  ): Promise<Answer<T>> {
    const hasBody = options.body !== undefined || options.rawBody !== undefined;
    const response = await fetch(`${baseUrl}${path}`, {
      method,
      headers: {
        ...(hasBody ? { 'content-type': 'application/json' } : {}),
        ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
      },
      ...(hasBody ? { body: options.rawBody ?? JSON.stringify(options.body) } : {}),
    });
    const text = await response.text();
    const body = text === '' ? undefined : JSON.parse(text);
    checkAnswer(api, method, path, response.status, body, response.headers.get('content-type') ?? '');
    return { status: response.status, body: body as T };
  };
}
