import type { z } from 'zod';
import type { CallPolicies } from './policies/index.ts';

/**
 * Contracts: the zod schemas of every action and event, imported by callers and callees alike, so a
 * call is typed end to end and a contract change is a visible diff.
 */

const NAME = /^[a-z][a-z0-9-]*\.[A-Za-z_][A-Za-z0-9_]*$/;

export interface ActionContract<I extends z.ZodType = z.ZodType, O extends z.ZodType = z.ZodType> {
  readonly kind: 'action';
  /** `<service>.<action>`, e.g. `orders.sellShares`. */
  readonly name: string;
  readonly service: string;
  readonly action: string;
  readonly input: I;
  readonly output: O;
  /** Safe to retry: the same input applied twice has the effect of once. */
  readonly idempotent: boolean;
  /** Default time a caller waits, in ms, unless the call or its deadline says otherwise. */
  readonly timeoutMs: number | undefined;
  /** Callers' policies for this action, over the node's defaults. */
  readonly policies: CallPolicies | undefined;
  readonly description: string | undefined;
}

export interface EventContract<P extends z.ZodType = z.ZodType> {
  readonly kind: 'event';
  /** `<source service>.<event>`, e.g. `orders.order_created`. */
  readonly name: string;
  readonly source: string;
  readonly event: string;
  readonly payload: P;
  readonly description: string | undefined;
}

export type AnyContract = ActionContract | EventContract;
export type InputOf<C extends ActionContract> = z.input<C['input']>;
export type OutputOf<C extends ActionContract> = z.output<C['output']>;
export type PayloadOf<C extends EventContract> = z.output<C['payload']>;
export type PayloadInputOf<C extends EventContract> = z.input<C['payload']>;

function splitName(name: string, what: string): [string, string] {
  if (!NAME.test(name)) {
    throw new TypeError(
      `${what} name "${name}" must be "<service>.<name>": a lower-case service name (letters, digits, dashes), a dot, then an identifier`,
    );
  }
  const dot = name.indexOf('.');
  return [name.slice(0, dot), name.slice(dot + 1)];
}

export function action<I extends z.ZodType, O extends z.ZodType>(
  name: string,
  spec: {
    input: I;
    output: O;
    idempotent?: boolean;
    timeoutMs?: number;
    policies?: CallPolicies;
    description?: string;
  },
): ActionContract<I, O> {
  const [service, actionName] = splitName(name, 'Action');
  return Object.freeze({
    kind: 'action',
    name,
    service,
    action: actionName,
    input: spec.input,
    output: spec.output,
    idempotent: spec.idempotent ?? false,
    timeoutMs: spec.timeoutMs,
    policies: spec.policies,
    description: spec.description,
  });
}

export function event<P extends z.ZodType>(
  name: string,
  payload: P,
  options: { description?: string } = {},
): EventContract<P> {
  const [source, eventName] = splitName(name, 'Event');
  return Object.freeze({
    kind: 'event',
    name,
    source,
    event: eventName,
    payload,
    description: options.description,
  });
}

/** Field errors as `{ path, message }`, the shape a validation error's `data.fields` carries. */
export interface FieldError {
  path: string;
  message: string;
  code: string;
}

export function fieldErrors(error: z.ZodError): FieldError[] {
  return error.issues.map((issue) => ({
    path: issue.path.map(String).join('.') || '(root)',
    message: issue.message,
    code: issue.code,
  }));
}
