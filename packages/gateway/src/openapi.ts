import { z } from 'zod';
import { errorBodySchema } from './errors.ts';
import type { Route } from './routes.ts';

/**
 * OpenAPI 3.1 from the route table: the contracts' zod schemas are the request and response schemas
 * (OpenAPI 3.1 is JSON Schema 2020-12, which zod writes natively), so the document cannot drift from
 * what the gateway validates.
 */

export interface OpenApiInfo {
  title: string;
  version: string;
  description?: string;
}

type JsonSchema = Record<string, unknown>;

const errorStatuses: Record<string, string> = {
  '400': 'Bad input: the fields are named in `details.fields`',
  '401': 'No valid bearer token',
  '403': 'Not allowed for this caller',
  '404': 'Not found',
  '409': 'Conflicts with the current state',
  '413': 'Body too large',
  '415': 'Body is not JSON',
  '422': 'Idempotency-Key reused with another body',
  '429': 'Rate limited: see Retry-After',
  '503': 'A service is unavailable; retry later',
  '504': 'The deadline passed',
};

function schemaOf(schema: z.ZodType, io: 'input' | 'output'): JsonSchema {
  const json = z.toJSONSchema(schema, { io, unrepresentable: 'any', target: 'draft-2020-12' }) as JsonSchema;
  delete json.$schema;
  return json;
}

/** `/orders/:id` → `/orders/{id}`, and the parameter names. */
function openApiPath(path: string): { path: string; params: string[] } {
  const params: string[] = [];
  const converted = path.replace(/:([A-Za-z0-9_]+)/g, (_match, name: string) => {
    params.push(name);
    return `{${name}}`;
  });
  return { path: converted, params };
}

export function openApiDocument(routes: readonly Route[], info: OpenApiInfo & { prefix?: string }): JsonSchema {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const spec of routes) {
    const { path, params } = openApiPath(`${info.prefix ?? ''}${spec.path}`);
    const method = spec.method.toLowerCase();
    const parameters: unknown[] = params.map((name) => ({
      name,
      in: 'path',
      required: true,
      schema: { type: 'string' },
    }));
    let requestBody: unknown;
    let responseSchema: JsonSchema | undefined;
    if (spec.kind === 'action') {
      const input = schemaOf(spec.action.input, 'input');
      const properties = (input.properties ?? {}) as Record<string, JsonSchema>;
      const required = new Set((input.required ?? []) as string[]);
      if (spec.method === 'GET' || spec.method === 'DELETE') {
        for (const [name, schema] of Object.entries(properties)) {
          if (params.includes(name)) continue;
          parameters.push({ name, in: 'query', required: required.has(name), schema });
        }
      } else {
        const bodyProperties = Object.fromEntries(
          Object.entries(properties).filter(([name]) => !params.includes(name)),
        );
        requestBody = {
          required: true,
          content: {
            'application/json': {
              schema: {
                ...input,
                properties: bodyProperties,
                required: [...required].filter((n) => !params.includes(n)),
              },
            },
          },
        };
      }
      responseSchema = schemaOf(spec.responseSchema ?? spec.action.output, 'output');
      if (spec.method === 'POST') {
        parameters.push({
          name: 'Idempotency-Key',
          in: 'header',
          required: false,
          description: 'Send again with the same key and body to get the first answer, without a second effect',
          schema: { type: 'string', maxLength: 255 },
        });
      }
    } else {
      if (spec.bodySchema) {
        requestBody = {
          required: true,
          content: { 'application/json': { schema: schemaOf(spec.bodySchema, 'input') } },
        };
      }
      if (spec.responseSchema) responseSchema = schemaOf(spec.responseSchema, 'output');
    }
    parameters.push(
      {
        name: 'Request-Timeout',
        in: 'header',
        required: false,
        description: 'Seconds the client will wait (capped by the server)',
        schema: { type: 'number', exclusiveMinimum: 0 },
      },
      {
        name: 'X-Request-Id',
        in: 'header',
        required: false,
        description: 'Correlation id; generated when absent and echoed in the response',
        schema: { type: 'string', pattern: '^[A-Za-z0-9_.:-]{1,128}$' },
      },
    );
    const status = String(spec.status ?? 200);
    const responses: Record<string, unknown> = {
      [status]:
        status === '204' || !responseSchema
          ? { description: 'Done' }
          : { description: 'Success', content: { 'application/json': { schema: responseSchema } } },
    };
    for (const [code, description] of Object.entries(errorStatuses)) {
      if (spec.auth === 'public' && (code === '401' || code === '403')) continue;
      responses[code] = {
        description,
        content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
      };
    }
    paths[path] ??= {};
    paths[path][method] = {
      operationId: spec.kind === 'action' ? spec.action.name : `${method} ${path}`,
      ...(spec.summary ? { summary: spec.summary } : {}),
      ...(spec.description || (spec.kind === 'action' && spec.action.description)
        ? { description: spec.description ?? (spec.kind === 'action' ? spec.action.description : undefined) }
        : {}),
      ...(spec.tags ? { tags: [...spec.tags] } : {}),
      ...(spec.auth === 'public' ? { security: [] } : {}),
      parameters,
      ...(requestBody ? { requestBody } : {}),
      responses,
    };
  }
  return {
    openapi: '3.1.0',
    info: { title: info.title, version: info.version, ...(info.description ? { description: info.description } : {}) },
    paths,
    components: {
      schemas: { Error: schemaOf(errorBodySchema, 'output') },
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } },
    },
    security: [{ bearer: [] }],
  };
}

/**
 * A docs page that needs nothing from the network: each operation with its parameters and schemas,
 * rendered in the browser from `/openapi.json`.
 */
export function docsPage(title: string, specUrl: string): string {
  const safeTitle = title.replace(/[<>&"]/g, (c) => `&#${c.charCodeAt(0)};`);
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${safeTitle} — API</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:15px/1.5 system-ui,sans-serif;max-width:960px;margin:2rem auto;padding:0 1rem;color:#222}
h1{margin-bottom:0}.op{border:1px solid #ddd;border-radius:6px;margin:1rem 0;padding:.5rem 1rem}
.m{display:inline-block;min-width:4.5em;font-weight:700;text-transform:uppercase}
.get{color:#0a6}.post{color:#06c}.put,.patch{color:#a60}.delete{color:#c33}
code,pre{font:13px ui-monospace,monospace}pre{background:#f6f6f6;padding:.5rem;overflow:auto}
summary{cursor:pointer}
</style></head><body>
<h1>${safeTitle}</h1><p>OpenAPI document: <a href="${specUrl}">${specUrl}</a></p><div id="ops">Loading…</div>
<script>
fetch(${JSON.stringify(specUrl)}).then(r=>r.json()).then(doc=>{
  const esc=s=>String(s).replace(/[&<>"]/g,c=>'&#'+c.charCodeAt(0)+';');
  const out=[];
  for(const [path,ops] of Object.entries(doc.paths)) for(const [m,op] of Object.entries(ops)){
    const params=(op.parameters||[]).map(p=>'<li><code>'+esc(p.name)+'</code> ('+p.in+(p.required?', required':'')+')'+(p.description?' — '+esc(p.description):'')+'</li>').join('');
    const body=op.requestBody?'<details><summary>Request body</summary><pre>'+esc(JSON.stringify(op.requestBody.content['application/json'].schema,null,2))+'</pre></details>':'';
    const res=Object.entries(op.responses).map(([s,r])=>'<details><summary>'+s+' '+esc(r.description)+'</summary>'+(r.content?'<pre>'+esc(JSON.stringify(r.content['application/json'].schema,null,2))+'</pre>':'')+'</details>').join('');
    out.push('<div class="op"><div><span class="m '+m+'">'+m+'</span> <code>'+esc(path)+'</code> '+(op.security&&op.security.length===0?'(public)':'')+'</div>'+(op.summary?'<p>'+esc(op.summary)+'</p>':'')+(params?'<ul>'+params+'</ul>':'')+body+res+'</div>');
  }
  document.getElementById('ops').innerHTML=out.join('');
});
</script></body></html>`;
}
