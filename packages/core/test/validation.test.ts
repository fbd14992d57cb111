import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { z } from 'zod';
import { validate } from '../src/validation.ts';

/** Counts the times zod itself is asked, so a test can tell the compiled path from zod's. */
function counted<S extends z.ZodType>(schema: S): { schema: S; zodCalls: () => number } {
  let calls = 0;
  const safeParse = schema.safeParse.bind(schema);
  (schema as { safeParse: unknown }).safeParse = (value: unknown) => {
    calls++;
    return safeParse(value);
  };
  return { schema, zodCalls: () => calls };
}

const text = fc.oneof(
  fc.constantFrom('', 'a', '101', '12345', '123456', 'BHP', 'ABCDEF', 'bhp', '😀', 'a😀', '😀😀😀', '\ud800', ' 1'),
  fc.stringMatching(/^\d{0,7}$/),
  fc.stringMatching(/^[A-Z]{0,6}$/),
  fc.string({ unit: 'grapheme', maxLength: 6 }),
  fc.uuid(),
);
const numeric = fc.oneof(
  fc.constantFrom(0, -0, 1, -1, 10, 11, 2 ** 53, 2 ** 53 - 1, -(2 ** 53), 0.5, Number.NaN, Infinity, -Infinity),
  fc.integer({ min: -20, max: 20 }),
  fc.double(),
);
const scalar = fc.oneof(text, numeric, fc.boolean(), fc.constantFrom(null, undefined, 'buy', 'sell', 'k'));
const anyValue = fc.oneof(scalar, fc.array(scalar, { maxLength: 4 }), fc.anything({ maxDepth: 2 }));

/** Objects with the schema's keys (any of them missing, any value), and sometimes keys it does not know. */
function objectsFor(keys: string[], value: fc.Arbitrary<unknown> = anyValue): fc.Arbitrary<unknown> {
  const record = fc.record(Object.fromEntries(keys.map((key) => [key, value])), { requiredKeys: [] });
  return fc.oneof(
    fc.tuple(record, fc.dictionary(fc.constantFrom('extra', 'other', 'toString'), scalar)).map(([known, extra]) => ({
      ...extra,
      ...known,
    })),
    record,
    anyValue,
  );
}

/** What a caller sees: success and data, or the issues zod reports. */
function outcome(result: z.ZodSafeParseResult<unknown>): unknown {
  return result.success ? { data: result.data } : { issues: result.error.issues };
}

function agreesWithZod(schema: z.ZodType, inputs: fc.Arbitrary<unknown>, runs = 3000): void {
  fc.assert(
    fc.property(inputs, (input) => {
      assert.deepStrictEqual(outcome(validate(schema, input)), outcome(schema.safeParse(input)));
    }),
    { numRuns: runs },
  );
}

const sellOrder = z.object({
  accountId: z.string().regex(/^\d+$/),
  symbol: z.string().regex(/^[A-Z]{1,5}$/),
  quantity: z.number().int().positive(),
});

describe('contract validation compiled once per schema', () => {
  it('answers as zod does for a sell order, on generated inputs, and asks zod only about the ones it refuses', () => {
    const { schema, zodCalls } = counted(sellOrder);
    const result = validate(schema, { accountId: '101', symbol: 'BHP', quantity: 10, extra: true });
    assert.deepStrictEqual(result, { success: true, data: { accountId: '101', symbol: 'BHP', quantity: 10 } });
    assert.equal(zodCalls(), 0, 'a valid order is answered without zod');
    const refused = validate(schema, { accountId: '101', symbol: 'bhp', quantity: 10 });
    assert.equal(refused.success, false);
    assert.equal(zodCalls(), 1, 'an invalid one gets zod’s own issues');
    agreesWithZod(sellOrder, objectsFor(['accountId', 'symbol', 'quantity'], fc.oneof(text, numeric)));
  });

  it('answers as zod does for lengths (zod counts code points), ranges, enums, literals, optional and nullable fields, arrays and nesting', () => {
    const schema = z.object({
      name: z.string().min(2).max(4),
      code: z.string().length(3),
      id: z.uuid().optional(),
      price: z.number().min(0).lt(100),
      count: z.number().int().nonnegative().max(10).nullable(),
      side: z.enum(['buy', 'sell']),
      kind: z.literal('k'),
      flag: z.boolean().optional(),
      tags: z.array(z.string().max(3)).min(1).max(3),
      nested: z.object({ at: z.number().gt(-1), note: z.string().optional() }).optional(),
    });
    const keys = Object.keys(schema.shape);
    agreesWithZod(schema, objectsFor(keys));
    agreesWithZod(
      schema,
      fc.record({
        name: text,
        code: text,
        id: fc.option(fc.uuid(), { nil: undefined }),
        price: numeric,
        count: fc.option(numeric, { nil: null }),
        side: fc.constantFrom('buy', 'sell', 'hold'),
        kind: fc.constantFrom('k', 'x'),
        flag: fc.option(fc.boolean(), { nil: undefined }),
        tags: fc.array(text, { maxLength: 4 }),
        nested: fc.option(fc.record({ at: numeric, note: fc.option(text, { nil: undefined }) }), { nil: undefined }),
      }),
    );
  });

  it('keeps a present-but-undefined optional key and drops an absent one, as zod does', () => {
    const schema = z.object({ a: z.string().optional(), b: z.number() });
    assert.deepStrictEqual(validate(schema, { a: undefined, b: 1 }), { success: true, data: { a: undefined, b: 1 } });
    assert.ok(!('a' in (validate(schema, { b: 1 }).data as object)));
  });

  it('leaves to zod every schema that transforms, defaults, refines, coerces or is not plain data', () => {
    const unsupported: [string, z.ZodType, unknown][] = [
      ['transform', z.string().transform((s) => s.length), 'abc'],
      ['trim', z.string().trim(), ' a '],
      ['default', z.object({ a: z.string().default('x') }), {}],
      ['refine', z.number().refine((n) => n !== 3), 4],
      ['coerce', z.coerce.number(), '4'],
      ['strict object', z.strictObject({ a: z.string() }), { a: 'x' }],
      ['loose object', z.looseObject({ a: z.string() }), { a: 'x', b: 1 }],
      ['union', z.union([z.string(), z.number()]), 1],
      ['url format', z.url(), 'https://example.com'],
      ['int32', z.int32(), 5],
      ['int32 out of range', z.int32(), 2 ** 40],
      ['float32 field', z.object({ n: z.float32() }), { n: 1 }],
      ['multiple of', z.number().multipleOf(5), 10],
      ['date', z.date(), new Date(0)],
      ['record', z.record(z.string(), z.number()), { a: 1 }],
    ];
    for (const [what, original, input] of unsupported) {
      const expected = outcome(original.safeParse(input));
      const { schema, zodCalls } = counted(original);
      assert.deepStrictEqual(outcome(validate(schema, input)), expected, what);
      assert.equal(zodCalls(), 1, `${what} goes to zod`);
    }
  });

  it('never accepts what zod refuses on arbitrary values, for schemas it compiles', () => {
    for (const schema of [
      z.string().min(1),
      z.number().int(),
      z.int(),
      z.array(z.boolean()),
      z.enum(['a', 'b']),
      sellOrder,
    ]) {
      agreesWithZod(schema, anyValue, 1000);
    }
  });
});
