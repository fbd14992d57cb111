import type { z } from 'zod';

/**
 * Contract validation, compiled once per schema. zod's `safeParse` builds a payload and an issue list
 * and runs every check through its generic machinery: for a three-field sell order that is about 12,000
 * instructions, a twelfth of a whole NATS round trip, and a call pays it up to three times (the edge's
 * input, the service's input, the service's output). Most contracts are plain data — objects of
 * strings, numbers, booleans, enums and literals with length, range and pattern checks — and for those
 * a value can be checked by a few closures instead.
 *
 * The compiled checker only ever says "valid, and here is what zod would return" or "not sure": for
 * anything it does not accept, zod itself runs, so every error, message and issue path is zod's own.
 * A schema with anything outside that subset (transforms, defaults, refinements, coercion, unions,
 * records, dates, lazy or custom types, strict or loose objects) is not compiled at all and always goes
 * to zod. `validation.test.ts` holds the checker to zod's answer on generated inputs.
 */

type Checker = (value: unknown) => unknown;

/** "Not sure": zod decides. */
const UNSURE: unique symbol = Symbol('unsure');

interface CheckDef {
  check: string;
  format?: string;
  pattern?: RegExp;
  minimum?: number;
  maximum?: number;
  length?: number;
  value?: number;
  inclusive?: boolean;
}

interface SchemaDef {
  type: string;
  checks?: { _zod: { def: CheckDef } }[];
  coerce?: boolean;
  format?: string;
  pattern?: RegExp;
  shape?: Record<string, z.core.$ZodType>;
  catchall?: z.core.$ZodType;
  innerType?: z.core.$ZodType;
  element?: z.core.$ZodType;
}

/**
 * String formats whose zod check is exactly `pattern.test(value)` (zod's `$ZodStringFormat`); formats
 * with checks of their own (url, jwt, base64, ipv6, …) are left to zod.
 */
const PATTERN_FORMATS = new Set([
  'regex',
  'uuid',
  'guid',
  'email',
  'cuid',
  'cuid2',
  'ulid',
  'datetime',
  'date',
  'time',
]);

const compiled = new WeakMap<z.core.$ZodType, Checker | null>();

/**
 * `schema.safeParse(value)`, answered by the schema's compiled checker when it can say the value is
 * valid, by zod otherwise.
 */
export function validate<S extends z.ZodType>(schema: S, value: unknown): z.ZodSafeParseResult<z.output<S>> {
  let checker = compiled.get(schema);
  if (checker === undefined) {
    checker = compile(schema) ?? null;
    compiled.set(schema, checker);
  }
  if (checker !== null) {
    const data = checker(value);
    if (data !== UNSURE) return { success: true, data: data as z.output<S> };
  }
  return schema.safeParse(value);
}

function defOf(schema: z.core.$ZodType): SchemaDef {
  return schema._zod.def as unknown as SchemaDef;
}

function compile(schema: z.core.$ZodType): Checker | undefined {
  const def = defOf(schema);
  if (def.coerce) return undefined;
  switch (def.type) {
    case 'string':
      return compileString(def);
    case 'number':
      return compileNumber(def);
    case 'boolean':
      return noChecks(def) ? (value) => (typeof value === 'boolean' ? value : UNSURE) : undefined;
    case 'enum':
    case 'literal': {
      const values = schema._zod.values;
      return values && noChecks(def) ? (value) => (values.has(value as never) ? value : UNSURE) : undefined;
    }
    case 'optional': {
      const inner = def.innerType && noChecks(def) ? compile(def.innerType) : undefined;
      return inner && ((value) => (value === undefined ? undefined : inner(value)));
    }
    case 'nullable': {
      const inner = def.innerType && noChecks(def) ? compile(def.innerType) : undefined;
      return inner && ((value) => (value === null ? null : inner(value)));
    }
    case 'array':
      return compileArray(def);
    case 'object':
      return compileObject(def);
    default:
      return undefined;
  }
}

function noChecks(def: SchemaDef): boolean {
  return def.checks === undefined || def.checks.length === 0;
}

function compileString(def: SchemaDef): Checker | undefined {
  const tests: ((value: string) => boolean)[] = [];
  // z.uuid(), z.email(), …: the format is the schema itself.
  if (def.format !== undefined) {
    if (!PATTERN_FORMATS.has(def.format) || !(def.pattern instanceof RegExp)) return undefined;
    tests.push(matches(def.pattern));
  }
  for (const check of def.checks ?? []) {
    const test = stringTest(check._zod.def);
    if (!test) return undefined;
    tests.push(test);
  }
  return (value) => (typeof value === 'string' && passes(tests, value) ? value : UNSURE);
}

function stringTest(check: CheckDef): ((value: string) => boolean) | undefined {
  switch (check.check) {
    case 'string_format':
      return check.format !== undefined && PATTERN_FORMATS.has(check.format) && check.pattern instanceof RegExp
        ? matches(check.pattern)
        : undefined;
    // zod counts code points, not UTF-16 units: a string with surrogate pairs is left to it.
    case 'min_length': {
      const minimum = check.minimum!;
      return (value) => value.length >= minimum && !hasSurrogate(value);
    }
    case 'max_length': {
      const maximum = check.maximum!;
      return (value) => value.length <= maximum;
    }
    case 'length_equals': {
      const length = check.length!;
      return (value) => value.length === length && !hasSurrogate(value);
    }
    default:
      return undefined;
  }
}

function matches(pattern: RegExp): (value: string) => boolean {
  return (value) => {
    pattern.lastIndex = 0;
    return pattern.test(value);
  };
}

function hasSurrogate(value: string): boolean {
  for (let i = 0; i < value.length; i++) {
    const unit = value.charCodeAt(i);
    if (unit >= 0xd800 && unit <= 0xdfff) return true;
  }
  return false;
}

function compileNumber(def: SchemaDef): Checker | undefined {
  const tests: ((value: number) => boolean)[] = [];
  // z.int(), z.int32(), …: the format is the schema itself. Only the safe integer is compiled.
  if (def.format !== undefined) {
    if (def.format !== 'safeint') return undefined;
    tests.push(Number.isSafeInteger);
  }
  for (const check of def.checks ?? []) {
    const { value: bound, inclusive } = check._zod.def;
    switch (check._zod.def.check) {
      case 'number_format':
        // .int(): a safe integer. Other formats (int32, float32, …) are left to zod.
        if (check._zod.def.format !== 'safeint') return undefined;
        tests.push(Number.isSafeInteger);
        break;
      case 'greater_than':
        tests.push(inclusive ? (value) => value >= bound! : (value) => value > bound!);
        break;
      case 'less_than':
        tests.push(inclusive ? (value) => value <= bound! : (value) => value < bound!);
        break;
      default:
        return undefined;
    }
  }
  // zod's number refuses NaN and ±Infinity.
  return (value) => (typeof value === 'number' && Number.isFinite(value) && passes(tests, value) ? value : UNSURE);
}

function compileArray(def: SchemaDef): Checker | undefined {
  const element = def.element && compile(def.element);
  if (!element) return undefined;
  const tests: ((length: number) => boolean)[] = [];
  for (const check of def.checks ?? []) {
    const { minimum, maximum, length } = check._zod.def;
    switch (check._zod.def.check) {
      case 'min_length':
        tests.push((n) => n >= minimum!);
        break;
      case 'max_length':
        tests.push((n) => n <= maximum!);
        break;
      case 'length_equals':
        tests.push((n) => n === length);
        break;
      default:
        return undefined;
    }
  }
  return (value) => {
    if (!Array.isArray(value) || !passes(tests, value.length)) return UNSURE;
    const out = new Array(value.length);
    for (let i = 0; i < value.length; i++) {
      const item = element(value[i]);
      if (item === UNSURE) return UNSURE;
      out[i] = item;
    }
    return out;
  };
}

interface Field {
  key: string;
  check: Checker;
  /** Absent is allowed, and then the key stays absent from the output (zod's optional-in/out). */
  optional: boolean;
}

/** z.object() in its default mode: unknown keys are dropped, the known ones copied in shape order. */
function compileObject(def: SchemaDef): Checker | undefined {
  if (def.catchall !== undefined || !noChecks(def) || !def.shape) return undefined;
  const fields: Field[] = [];
  for (const key of Object.keys(def.shape)) {
    if (key === '__proto__') return undefined;
    const schema = def.shape[key]!;
    const { optin, optout } = schema._zod;
    if (optin !== undefined && !(optin === 'optional' && optout === 'optional')) return undefined;
    const check = compile(schema);
    if (!check) return undefined;
    fields.push({ key, check, optional: optin === 'optional' });
  }
  return (value) => {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) return UNSURE;
    const input = value as Record<string, unknown>;
    const out: Record<string, unknown> = {};
    for (const { key, check, optional } of fields) {
      const present = key in input;
      if (!present && optional) continue;
      if (!present) return UNSURE;
      const parsed = check(input[key]);
      if (parsed === UNSURE) return UNSURE;
      out[key] = parsed;
    }
    return out;
  };
}

function passes<T>(tests: ((value: T) => boolean)[], value: T): boolean {
  for (const test of tests) if (!test(value)) return false;
  return true;
}
