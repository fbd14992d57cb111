import type { z } from 'zod';
import type { ActionContract } from './contracts.ts';

/**
 * An action's input as its contract's schema parsed it, made only by `parseInput`. An edge that checks
 * a request against the contract before calling (the gateway, for its 400) passes it with the call
 * (`parsedInput`): a handler this node runs for the very same schema takes `data` as its input instead
 * of parsing the input a second time. Anything else — another schema, a call over the wire, a retry —
 * parses as always.
 *
 * A class that is not exported: only this module makes one, and a value that merely looks like one
 * (a JSON body with `success` and `data`, say) is not an instance of it.
 */
class ParsedInputOf<Output> {
  readonly success = true as const;
  /** The schema that parsed it: a handler's contract must have this one to take `data` as parsed. */
  readonly schema: z.ZodType;
  readonly data: Output;

  constructor(schema: z.ZodType, data: Output) {
    this.schema = schema;
    this.data = data;
  }
}

/** The input of `C` as its contract parsed it (see `parseInput`). */
export type ParsedInput<C extends ActionContract = ActionContract> = ParsedInputOf<z.output<C['input']>>;

/**
 * Parses a call's input against the action's contract as the action itself would: a `ParsedInput` on
 * success (zod's result shape: `success`, `data`), zod's failure otherwise.
 */
export function parseInput<C extends ActionContract>(
  contract: C,
  input: unknown,
): ParsedInput<C> | z.ZodSafeParseError<z.input<C['input']>> {
  const parsed = contract.input.safeParse(input);
  if (!parsed.success) return parsed as z.ZodSafeParseError<z.input<C['input']>>;
  return new ParsedInputOf(contract.input, parsed.data as z.output<C['input']>);
}

/**
 * What a handler for `schema` takes as its parsed input from `parsedInput`, or undefined when it must
 * parse: none was given, it is not one `parseInput` made, or another schema made it. (A schema may parse
 * to `undefined` itself; such an input is parsed again, which is only slower.)
 */
export function alreadyParsed(parsedInput: unknown, schema: z.ZodType): ParsedInputOf<unknown> | undefined {
  return parsedInput instanceof ParsedInputOf && parsedInput.schema === schema ? parsedInput : undefined;
}
