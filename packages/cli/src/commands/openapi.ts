import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { type OpenApiInfo, openApiDocument, type Route } from '@chassis/gateway';
import { CliError, type Output } from '../output.ts';
import { type App, findApp, importFromApp } from '../workspace.ts';

/** What an app's `"chassis.gateway"` export is: what it gives `createGateway`. */
export interface GatewayApi {
  routes: readonly Route[];
  openapi: OpenApiInfo;
  prefix?: string;
}

function isGatewayApi(value: unknown): value is GatewayApi {
  if (typeof value !== 'object' || value === null) return false;
  const { routes, openapi } = value as Record<string, unknown>;
  const info = openapi as Record<string, unknown> | undefined;
  return Array.isArray(routes) && typeof info?.title === 'string' && typeof info.version === 'string';
}

/** The app's OpenAPI document, as its gateway serves it at /openapi.json. */
export async function openApiOf(app: App): Promise<Record<string, unknown>> {
  if (!app.gateway) {
    throw new CliError(
      `${app.name} names no gateway: add "chassis": { "gateway": "src/gateway.ts#api" } to its package.json, an export { routes, openapi: { title, version } }`,
    );
  }
  const api = await importFromApp(app, app.gateway, 'api');
  if (!isGatewayApi(api)) {
    throw new CliError(
      `${app.gateway} (${app.name}'s "chassis.gateway") is not { routes, openapi: { title, version }, prefix? }`,
    );
  }
  return openApiDocument(api.routes, { ...api.openapi, ...(api.prefix ? { prefix: api.prefix } : {}) });
}

/** `chassis openapi [app] [--out file]`: the document on stdout, or in a file. */
export async function openapi(given: string | undefined, options: { out?: string; cwd?: string }, output: Output) {
  const app = findApp(given, options.cwd);
  const text = `${JSON.stringify(await openApiOf(app), null, 2)}\n`;
  if (options.out) {
    const file = resolve(options.cwd ?? process.cwd(), options.out);
    writeFileSync(file, text);
    output.say(`wrote ${app.name}'s OpenAPI document to ${options.out}`);
  } else {
    output.out(text);
  }
}
