import assert from 'node:assert/strict';
import { METHODS } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { signToken } from '@chassis/core';
import { errorBodySchema, type Route } from '@chassis/gateway';
import { integerFromEnv } from '@chassis/testing';
import fc from 'fast-check';
import { type BankApi, bankRoutes, SECRET, startBankApi, token } from './bank-api.ts';

/**
 * Property-based fuzzing of the edge: every route of the bank's table gets generated requests — broken
 * and hostile bodies, params, query strings and headers, wrong methods — and whatever comes in, the
 * gateway must answer below 500, in the one error shape with the response's request id, without a
 * stack trace, and stay healthy afterwards.
 *
 * Deterministic: the seed is fixed (FUZZ_SEED overrides it, FUZZ_RUNS the runs per property), and a
 * failure names the seed and the shrunk request that broke the rule.
 */

const SEED = integerFromEnv('FUZZ_SEED', { fallback: 20_261_201, min: Number.MIN_SAFE_INTEGER });
const RUNS = integerFromEnv('FUZZ_RUNS', { fallback: 250 });
/** Bodies of up to ~2 MB are slow to build and send: fewer runs of those. */
const HUGE_RUNS = RUNS === 0 ? 0 : Math.max(5, Math.round(RUNS / 8));
/** FUZZ_RUNS=0 leaves the properties out, and the report says so rather than passing them unrun. */
const PROPERTIES = { skip: RUNS === 0 ? 'FUZZ_RUNS=0: no generated requests asked for' : false };

/** What the gateway's genReqId keeps of a client's `X-Request-Id`. */
const SANE_REQUEST_ID = /^[A-Za-z0-9_.:-]{1,128}$/;
/** A line of a stack trace, e.g. `    at handler (/app/src/gateway.ts:12:5)`. */
const STACK_LINE = /\n\s+at \S|\(\/[^)]*:\d+:\d+\)|node:internal/;

interface FuzzRequest {
  method: string;
  url: string;
  headers: Record<string, string>;
  body?: string;
}

/** Tokens made once, before the arbitraries that pick among them. */
interface Tokens {
  valid: string[];
  expired: string;
  forged: string;
  /** Signed with the right secret, but with claims the gateway and services must not trust blindly. */
  oddClaims: string[];
}

// ---------------------------------------------------------------------------------------------------
// Building blocks

const printableAscii = fc.integer({ min: 0x20, max: 0x7e }).map((code) => String.fromCharCode(code));
/** What can travel in an HTTP header value: visible ASCII, tabs, and obs-text (Latin-1). */
const headerText = (maxLength = 80) =>
  fc.string({
    unit: fc.oneof(
      { arbitrary: printableAscii, weight: 8 },
      { arbitrary: fc.constantFrom('\t', 'é', 'ÿ', '\u00a0'), weight: 1 },
    ),
    maxLength,
  });
const anyText = (maxLength = 40) =>
  fc.oneof(
    fc.string({ maxLength }),
    fc.string({ unit: 'grapheme', maxLength }),
    fc.string({ unit: 'binary', maxLength }),
    fc.string({ unit: 'binary-ascii', maxLength }),
  );

/** Percent-encodes, keeping lone surrogates (which encodeURIComponent refuses) as invalid UTF-8. */
function encodePart(text: string): string {
  try {
    return encodeURIComponent(text);
  } catch {
    return text
      .split('')
      .map((char) => {
        try {
          return encodeURIComponent(char);
        } catch {
          return '%ED%A0%80';
        }
      })
      .join('');
  }
}

/** A path parameter: values the route knows, garbage, encoded slashes, empty, far too long. */
function paramValue(known: readonly string[]): fc.Arbitrary<string> {
  return fc.oneof(
    { arbitrary: fc.constantFrom(...known), weight: 4 },
    { arbitrary: anyText(30).map(encodePart), weight: 4 },
    {
      arbitrary: fc.constantFrom(
        '',
        '%2F',
        '..%2F..%2Fetc%2Fpasswd',
        '%00',
        '%',
        '%zz',
        '%E0%A4%A',
        '%ED%A0%80',
        '%C0%AF',
        '%25',
        '%20',
        '.',
        'null',
        'undefined',
        '__proto__',
        'constructor',
        '-1',
        '1e309',
      ),
      weight: 3,
    },
    { arbitrary: fc.integer({ min: 90, max: 3000 }).map((n) => 'x'.repeat(n)), weight: 1 },
  );
}

const knownParams: Record<string, readonly string[]> = {
  accountId: ['101', '102', '999', '1'],
  id: ['o-1', 'o-2', 'missing'],
  symbol: ['BHP', 'GOOG', 'ABC', 'NOPE', 'bhp'],
};

/** Query pairs, already encoded: the contract's own field names, prototype names and noise. */
function queryString(route: Route): fc.Arbitrary<string> {
  const isSlow = route.path === '/reports/slow';
  const key = fc.oneof(
    fc.constantFrom('page', 'size', 'accountId', 'symbol', 'orderId', 'name', 'quantity'),
    fc.constantFrom('__proto__', 'constructor', 'toString', 'hasOwnProperty', 'valueOf', 'a[b]', 'a.b', ''),
    anyText(12),
  );
  const value = fc.oneof(
    anyText(30),
    fc.integer().map(String),
    fc.double().map(String),
    fc.constantFrom('', 'true', 'false', 'null', '1e400', '-0', '0x10', ' 5 ', 'NaN', 'Infinity'),
    fc.integer({ min: 200, max: 5000 }).map((n) => '9'.repeat(n)),
  );
  const pair = fc
    .tuple(key, value)
    // `ms` is how long the slow route sleeps: only the controlled values below may reach it.
    .filter(([name]) => name !== 'ms')
    .map(([name, text]) => `${encodePart(name)}=${encodePart(text)}`);
  const raw = fc.constantFrom('&&&', '===', '%', '%zz=1', 'a=%E0%A4%A', '?', '#frag', 'a&a&a', 'page=1&page=2');
  const slowMs = fc.constantFrom('0', '1', '2', '-1', '10001', '1.5', 'abc', '', '1e1', '0x5', ' 3 ', '1&ms=2');
  return fc
    .tuple(fc.array(fc.oneof({ arbitrary: pair, weight: 6 }, { arbitrary: raw, weight: 1 }), { maxLength: 6 }), slowMs)
    .map(([pairs, ms]) => {
      const all = isSlow ? [`ms=${ms}`, ...pairs] : pairs;
      return all.length === 0 ? '' : `?${all.join('&')}`;
    });
}

/** An `Authorization` header: none, the bank's users, expired, forged, odd claims, and garbage. */
function authorization(tokens: Tokens): fc.Arbitrary<string | undefined> {
  const base64url = (value: unknown) => Buffer.from(JSON.stringify(value) ?? 'null').toString('base64url');
  const jwtShaped = fc
    .tuple(
      fc.constantFrom<unknown>(
        { alg: 'HS256', typ: 'JWT' },
        { alg: 'none' },
        { alg: 'RS256' },
        { alg: 'HS256', crit: ['exp'] },
        { alg: 'HS256', b64: false, crit: ['b64'] },
        {},
        [],
        'x',
      ),
      fc.jsonValue({ maxDepth: 3 }),
      fc.string({ unit: 'binary-ascii', maxLength: 50 }),
    )
    .map(([header, payload, signature]) => `${base64url(header)}.${base64url(payload)}.${signature}`);
  const bearerOf = (value: fc.Arbitrary<string>) =>
    fc.tuple(fc.constantFrom('Bearer ', 'bearer ', 'BEARER\t', 'Bearer  '), value).map(([scheme, t]) => scheme + t);
  return fc.oneof(
    { arbitrary: fc.constant(undefined), weight: 3 },
    { arbitrary: bearerOf(fc.constantFrom(...tokens.valid)), weight: 5 },
    { arbitrary: bearerOf(fc.constantFrom(tokens.expired, tokens.forged, ...tokens.oddClaims)), weight: 2 },
    { arbitrary: bearerOf(jwtShaped), weight: 2 },
    { arbitrary: bearerOf(headerText(200)), weight: 2 },
    {
      arbitrary: fc.oneof(
        headerText(120),
        fc.constantFrom('Bearer', 'Bearer ', 'Basic YWxpY2U6cHc=', 'Bearer a.b.c', 'Bearer a b', 'Token x'),
        fc.integer({ min: 1000, max: 20_000 }).map((n) => `Bearer ${'A'.repeat(n)}`),
      ),
      weight: 2,
    },
  );
}

const contentType = fc.oneof(
  { arbitrary: fc.constant('application/json'), weight: 6 },
  { arbitrary: fc.constant(undefined), weight: 2 },
  {
    arbitrary: fc.constantFrom(
      'application/json; charset=utf-8',
      'APPLICATION/JSON',
      'application/json; charset=utf-16',
      'application/json;;;',
      'application/vnd.api+json',
      'text/plain',
      'text/plain; charset=utf-8',
      'application/x-www-form-urlencoded',
      'multipart/form-data; boundary=----fuzz',
      'application/octet-stream',
      'application/*',
      '*/*',
      '',
      ';',
    ),
    weight: 4,
  },
  { arbitrary: headerText(60), weight: 1 },
);

/** Request-Timeout and X-Deadline: mostly absent or garbage; tiny deadlines are allowed to time out. */
const deadlineHeaders = fc.oneof(
  { arbitrary: fc.constant({}), weight: 6 },
  {
    arbitrary: fc
      .oneof(
        headerText(20),
        fc.constantFrom('0', '-1', '1e400', 'NaN', 'Infinity', '', ' ', '1e-9', '0.001', '5', '30', '9999999'),
        fc.double().map(String),
      )
      .map((value) => ({ 'request-timeout': value })),
    weight: 2,
  },
  {
    arbitrary: fc
      .oneof(
        headerText(20),
        fc.constantFrom('0', '-1', '1', '99999999999999999999', '1.5', '', String(Number.MAX_SAFE_INTEGER)),
        fc.integer({ min: -60_000, max: 60_000 }).map((offset) => String(Date.now() + offset)),
      )
      .map((value) => ({ 'x-deadline': value })),
    weight: 2,
  },
);

const requestId = fc.option(
  fc.oneof(
    fc.stringMatching(/^[A-Za-z0-9_.:-]{1,40}$/),
    headerText(60),
    fc.integer({ min: 129, max: 2000 }).map((n) => 'r'.repeat(n)),
  ),
  { nil: undefined },
);
const idempotencyKey = fc.option(
  fc.oneof(
    fc.stringMatching(/^[A-Za-z0-9_.:-]{1,40}$/),
    headerText(60),
    fc.integer({ min: 256, max: 2000 }).map((n) => 'k'.repeat(n)),
    fc.constant(''),
  ),
  { nil: undefined },
);
/** Trace context, passed on to every call the request makes: garbage must not break the call. */
const traceHeaders = fc.option(
  fc.record(
    {
      traceparent: fc.oneof(
        headerText(60),
        fc.constant('00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'),
        fc.constant('00-00000000000000000000000000000000-0000000000000000-01'),
        fc.constant('ff-zz-zz-zz'),
      ),
      tracestate: headerText(60),
    },
    { requiredKeys: [] },
  ),
  { nil: undefined },
);
/** Headers the gateway does not read, under names that cannot clash with the ones HTTP itself needs. */
const noiseHeaders = fc.dictionary(fc.stringMatching(/^x-fuzz-[a-z0-9-]{1,12}$/), headerText(40), { maxKeys: 3 });

/** A body close to what the route expects, with fields of wrong types or values mixed in. */
function nearlyValidBody(route: Route): fc.Arbitrary<unknown> {
  const wrong = fc.anything({ maxDepth: 2 });
  const field = <T>(good: fc.Arbitrary<T>) => fc.oneof({ arbitrary: good, weight: 3 }, { arbitrary: wrong, weight: 1 });
  switch (route.path) {
    case '/shares/sell':
      return fc.record(
        {
          accountId: field(fc.constantFrom('101', '102', '999')),
          symbol: field(fc.constantFrom('BHP', 'GOOG', 'bhp')),
          quantity: field(fc.oneof(fc.integer({ min: -2, max: 5 }), fc.constantFrom(1.5, 1e300, 2_000_000))),
          extra: wrong,
        },
        { requiredKeys: [] },
      );
    case '/strategies':
      return fc.record(
        {
          name: field(fc.string({ maxLength: 120 })),
          assets: field(
            fc.array(
              fc.record({
                assetId: field(fc.constantFrom('BHP', 'GOOG', 'x')),
                percentage: field(fc.integer({ min: -5, max: 105 })),
              }),
              { maxLength: 4 },
            ),
          ),
        },
        { requiredKeys: [] },
      );
    default:
      return fc.dictionary(fc.string({ maxLength: 10 }), wrong, { maxKeys: 4 });
  }
}

/** A request body as sent on the wire: JSON of anything, malformed JSON, prototype pollution attempts. */
function bodyText(route: Route): fc.Arbitrary<string | undefined> {
  const stringify = (value: unknown): string | undefined => {
    try {
      return JSON.stringify(value);
    } catch {
      return String(value);
    }
  };
  return fc.oneof(
    { arbitrary: fc.constant(undefined), weight: 2 },
    { arbitrary: nearlyValidBody(route).map(stringify), weight: 5 },
    { arbitrary: fc.json({ maxDepth: 4 }), weight: 3 },
    { arbitrary: fc.anything({ maxDepth: 3 }).map(stringify), weight: 2 },
    { arbitrary: anyText(200), weight: 2 },
    { arbitrary: fc.json().map((json) => json.slice(0, Math.max(0, json.length - 1))), weight: 1 },
    {
      arbitrary: fc.constantFrom(
        '',
        'null',
        '[]',
        '{}',
        '""',
        '0',
        'NaN',
        "{'a':1}",
        '{"a":',
        '{"a":1}garbage',
        '\ufeff{}',
        '{"__proto__":{"polluted":true}}',
        '{"constructor":{"prototype":{"polluted":true}}}',
        '{"accountId":"101","symbol":"BHP","quantity":1,"__proto__":{"admin":true}}',
        '{"a":1,"a":2}',
      ),
      weight: 2,
    },
  );
}

function requestFor(route: Route, tokens: Tokens): fc.Arbitrary<FuzzRequest> {
  const names = [...route.path.matchAll(/:(\w+)/g)].map((match) => match[1]!);
  const params = fc.tuple(...names.map((name) => paramValue(knownParams[name] ?? ['x'])));
  // Mostly the route's own method; now and then another (HEAD, OPTIONS, PROPFIND, …).
  const method = fc.oneof(
    { arbitrary: fc.constant(route.method), weight: 6 },
    { arbitrary: fc.constantFrom(...METHODS), weight: 1 },
  );
  return fc
    .record({
      method,
      params,
      query: queryString(route),
      authorization: authorization(tokens),
      contentType,
      deadline: deadlineHeaders,
      requestId,
      idempotencyKey,
      trace: traceHeaders,
      noise: noiseHeaders,
      body: bodyText(route),
    })
    .map((generated) => {
      let index = 0;
      const path = route.path.replace(/:(\w+)/g, () => generated.params[index++] ?? '');
      const headers: Record<string, string> = { ...generated.noise, ...generated.deadline, ...generated.trace };
      if (generated.authorization !== undefined) headers.authorization = generated.authorization;
      if (generated.contentType !== undefined) headers['content-type'] = generated.contentType;
      if (generated.requestId !== undefined) headers['x-request-id'] = generated.requestId;
      if (generated.idempotencyKey !== undefined) headers['idempotency-key'] = generated.idempotencyKey;
      return {
        method: generated.method,
        url: path + generated.query,
        headers,
        ...(generated.body === undefined ? {} : { body: generated.body }),
      };
    });
}

/** A POST route, by its path: a failure report then shows the path, not the whole route object. */
const postRoute = fc.constantFrom(...bankRoutes.filter((route) => route.method === 'POST').map((route) => route.path));

/** A route's path with valid-looking values for its parameters. */
function samplePath(path: string): string {
  return path.replace(/:(\w+)/g, (_match, name: string) => knownParams[name]?.[0] ?? 'x');
}

// ---------------------------------------------------------------------------------------------------
// The rules every answer keeps

function describeRequest(request: FuzzRequest): string {
  const body =
    request.body === undefined ? 'no body' : `body ${request.body.length} chars: ${request.body.slice(0, 200)}`;
  return `${request.method} ${request.url.slice(0, 300)} headers ${JSON.stringify(request.headers).slice(0, 600)}; ${body}`;
}

function stringsIn(value: unknown, out: string[] = []): string[] {
  if (typeof value === 'string') out.push(value);
  else if (Array.isArray(value)) for (const item of value) stringsIn(item, out);
  else if (value !== null && typeof value === 'object') for (const item of Object.values(value)) stringsIn(item, out);
  return out;
}

type Answer = Awaited<ReturnType<BankApi['gateway']['app']['inject']>>;

function checkAnswer(request: FuzzRequest, response: Answer): void {
  const context = () => `${describeRequest(request)}\n→ ${response.statusCode} ${response.body.slice(0, 600)}`;
  const headerId = response.headers['x-request-id'];
  assert.equal(typeof headerId, 'string', `every answer carries X-Request-Id\n${context()}`);
  const sentId = request.headers['x-request-id'];
  if (sentId !== undefined && SANE_REQUEST_ID.test(sentId)) {
    assert.equal(headerId, sentId, `a sane X-Request-Id from the client is kept\n${context()}`);
  }
  assert.ok(!STACK_LINE.test(response.body), `no stack trace in the body\n${context()}`);

  const askedForDeadline = 'request-timeout' in request.headers || 'x-deadline' in request.headers;
  if (response.statusCode >= 500) {
    assert.ok(
      response.statusCode === 504 && askedForDeadline,
      `no server error (a 504 only for a deadline the client set)\n${context()}`,
    );
  }
  // HEAD answers carry no body.
  if (request.method === 'HEAD' || (response.statusCode >= 200 && response.statusCode < 300)) return;

  let json: unknown;
  try {
    json = JSON.parse(response.body);
  } catch {
    assert.fail(`an error body is JSON\n${context()}`);
  }
  const parsed = errorBodySchema.safeParse(json);
  assert.ok(parsed.success, `an error body has the error shape\n${context()}`);
  const { error } = parsed.data;
  assert.equal(error.requestId, headerId, `the body's requestId is the X-Request-Id header\n${context()}`);
  if (response.statusCode === 504) assert.equal(error.code, 'TIMEOUT', context());
  for (const text of stringsIn(parsed.data)) {
    assert.ok(!STACK_LINE.test(text), `no stack trace in the error's fields\n${context()}`);
  }
}

// ---------------------------------------------------------------------------------------------------

describe('gateway: fuzzing every route', () => {
  let api: BankApi;
  let tokens: Tokens;
  const failures: string[] = [];

  const send = async (request: FuzzRequest): Promise<Answer> =>
    api.gateway.app.inject({
      method: request.method,
      url: request.url,
      headers: request.headers,
      ...(request.body === undefined ? {} : { payload: request.body }),
    });
  /** Runs a property with the fixed seed; a failure says how to replay it. */
  const check = async <T>(
    name: string,
    seedOffset: number,
    arbitrary: fc.Arbitrary<T>,
    runs: number,
    predicate: (value: T) => Promise<void>,
  ) => {
    const seed = SEED + seedOffset;
    try {
      await fc.assert(fc.asyncProperty(arbitrary, predicate), { seed, numRuns: runs });
    } catch (error) {
      failures.push(name);
      console.error(`fuzz: "${name}" failed with seed ${seed} (replay: FUZZ_SEED=${SEED} FUZZ_RUNS=${RUNS})`);
      throw error;
    }
  };

  before(async () => {
    api = await startBankApi();
    tokens = {
      valid: [await token.alice(), await token.bob(), await token.admin()],
      expired: await signToken(
        SECRET,
        { sub: 'alice', roles: ['customer'], accounts: ['101'] },
        { expiresInSeconds: -120 },
      ),
      forged: await signToken('not-the-bank-secret-but-just-as-long!', { sub: 'admin', roles: ['admin'] }),
      oddClaims: [
        await signToken(SECRET, { sub: '' }),
        await signToken(SECRET, { sub: 'mallory', roles: 'admin' as unknown as string[] }),
        await signToken(SECRET, {
          sub: 'mallory',
          roles: [7, null, 'customer'] as unknown as string[],
          accounts: '101',
        }),
        await signToken(SECRET, { sub: 'mallory', roles: ['customer'], accounts: { 0: '101' } }),
        await signToken(SECRET, { sub: 'x'.repeat(2000), roles: ['customer'], accounts: ['101', 102] }),
      ],
    };
  });
  after(async () => {
    if (failures.length > 0) console.error(`fuzz: seed ${SEED}; failed: ${failures.join(', ')}`);
    await api?.close();
  });

  bankRoutes.forEach((route, index) => {
    it(`${route.method} ${route.path}: random params, query, headers and bodies`, PROPERTIES, async () => {
      await check(`${route.method} ${route.path}`, index, requestFor(route, tokens), RUNS, async (request) => {
        checkAnswer(request, await send(request));
      });
    });
  });

  it('every method on every route path: the wrong ones are a 404 in the error shape', async () => {
    for (const route of bankRoutes) {
      for (const method of METHODS) {
        const request: FuzzRequest = {
          method,
          url: samplePath(route.path),
          headers: { authorization: `Bearer ${tokens.valid[0]}`, 'content-type': 'application/json' },
          body: '{}',
        };
        const response = await send(request);
        checkAnswer(request, response);
        const served = method === route.method || (method === 'HEAD' && route.method === 'GET');
        if (!served) assert.equal(response.statusCode, 404, describeRequest(request));
      }
    }
  });

  it(
    'huge bodies, up to ~2 MB: strings, arrays, many keys, beside the valid fields or instead of them',
    PROPERTIES,
    async () => {
      // The shape is generated, the body built from it: a failure then shows a few numbers, not 2 MB.
      const shape = fc.record({
        path: postRoute,
        kind: fc.constantFrom('string', 'array', 'keys', 'bare-string'),
        bytes: fc.integer({ min: 256 * 1024, max: 2 * 1024 * 1024 }),
        char: fc.constantFrom('x', 'é', '😀', '\\u0000', '"'),
        withKey: fc.boolean(),
      });
      await check('huge bodies', 100, shape, HUGE_RUNS, async ({ path, kind, bytes, char, withKey }) => {
        const unit = char === '"' ? '\\"' : char;
        const count = Math.max(1, Math.floor(bytes / Buffer.byteLength(unit)));
        const valid = '"accountId":"101","symbol":"BHP","quantity":1,"name":"n"';
        const pad =
          kind === 'string' || kind === 'bare-string'
            ? `"${unit.repeat(count)}"`
            : kind === 'array'
              ? `[${'1,'.repeat(Math.floor(bytes / 2))}1]`
              : `{${Array.from({ length: Math.floor(bytes / 12) }, (_, i) => `"k${i}":${i}`).join(',')}}`;
        const request: FuzzRequest = {
          method: 'POST',
          url: samplePath(path),
          headers: {
            authorization: `Bearer ${path === '/strategies' ? tokens.valid[2] : tokens.valid[0]}`,
            'content-type': 'application/json',
            ...(withKey ? { 'idempotency-key': `huge-${bytes}` } : {}),
          },
          body: kind === 'bare-string' ? pad : `{${valid},"pad":${pad}}`,
        };
        const response = await send(request);
        checkAnswer(request, response);
        if (Buffer.byteLength(request.body ?? '') > 1024 * 1024) {
          assert.equal(response.statusCode, 413, `over the body limit is a 413\n${describeRequest(request)}`);
        }
      });
    },
  );

  it(
    'deeply nested bodies: arrays and objects thousands deep, with and without Idempotency-Key',
    PROPERTIES,
    async () => {
      const shape = fc.record({
        path: postRoute,
        depth: fc.oneof(fc.integer({ min: 1, max: 200 }), fc.integer({ min: 1000, max: 150_000 })),
        kind: fc.constantFrom('array', 'object', 'mixed'),
        where: fc.constantFrom('root', 'beside-valid-fields'),
        withKey: fc.boolean(),
      });
      await check('deep bodies', 200, shape, RUNS, async ({ path, depth, kind, where, withKey }) => {
        const open = kind === 'array' ? '[' : kind === 'object' ? '{"a":' : '[{"a":';
        const close = kind === 'array' ? ']' : kind === 'object' ? '}' : '}]';
        const nested = `${open.repeat(depth)}1${close.repeat(depth)}`;
        const valid =
          '"accountId":"101","symbol":"BHP","quantity":1,"name":"n","assets":[{"assetId":"BHP","percentage":100}]';
        const request: FuzzRequest = {
          method: 'POST',
          url: samplePath(path),
          headers: {
            authorization: `Bearer ${path === '/strategies' ? tokens.valid[2] : tokens.valid[0]}`,
            'content-type': 'application/json',
            ...(withKey ? { 'idempotency-key': `deep-${kind}-${depth}-${where}` } : {}),
          },
          body: where === 'root' ? nested : `{${valid},"pad":${nested}}`,
        };
        checkAnswer(request, await send(request));
      });
    },
  );

  it('afterwards the gateway is still ready and answers a normal request', async () => {
    const ready = await api.gateway.app.inject({ method: 'GET', url: '/health/ready' });
    assert.equal(ready.statusCode, 200, ready.body);
    assert.equal(ready.json().status, 'pass');
    const price = await api.gateway.app.inject({ method: 'GET', url: '/prices/BHP' });
    assert.equal(price.statusCode, 200, price.body);
    assert.deepEqual(price.json(), { symbol: 'BHP', price: '91.72' });
    const accounts = await api.gateway.app.inject({
      method: 'GET',
      url: '/accounts',
      headers: { authorization: `Bearer ${await token.alice()}` },
    });
    assert.equal(accounts.statusCode, 200, accounts.body);
    assert.deepEqual(accounts.json(), [{ id: '101', name: 'Alice ISA', cash: '10000.00' }]);
  });
});
