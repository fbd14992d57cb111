import { ChassisError, toChassisError } from '@chassis/core';

/**
 * Backend-for-frontend composition: one screen's data from several actions at once. A slow or broken
 * part costs its own field, not the whole page — unless the page means nothing without it.
 */

/** What a part is given, to pass on to the calls it makes so that they stop when it is abandoned. */
export interface PartBudget {
  /** Milliseconds the part has, e.g. for `call(contract, input, { timeoutMs })`; undefined when unbounded. */
  timeoutMs: number | undefined;
  /** Aborted when the part is abandoned: its time ran out, or a required part failed. */
  signal: AbortSignal;
}

export type ComposePart<T = unknown> = (budget: PartBudget) => Promise<T>;

export interface ComposeOptions<P, R extends keyof P> {
  /** Absolute epoch ms by which every part must have answered: the request's, `ctx.deadline`. */
  deadline?: number;
  /** A part's own budget in ms, shorter than the request's: `{ recommendations: 300 }`. */
  timeoutMs?: { readonly [K in keyof P]?: number };
  /** Parts the answer means nothing without: the first of them to fail fails the composition with its error. */
  required?: readonly R[];
}

/** Why a part has no value: its error's stable code and a message safe to show. */
export interface PartError {
  code: string;
  message: string;
}

type ValueOf<P, K extends keyof P> = P[K] extends ComposePart<infer T> ? T : never;

export interface Composition<P, R extends keyof P = never> {
  /** Each part's value; `null` for one that failed (never for a required one: it would have thrown). */
  data: { [K in keyof P]: K extends R ? ValueOf<P, K> : ValueOf<P, K> | null };
  /** Whether some part failed, so a client can say the page is incomplete. */
  partial: boolean;
  errors: { [K in keyof P]?: PartError };
}

type Outcome = { name: string; ok: true; value: unknown } | { name: string; ok: false; error: ChassisError };

/**
 * Runs every part at once and waits for the slowest, or for its budget: a part past its `timeoutMs` (or
 * the `deadline`) fails with `TIMEOUT` at that moment instead of holding the answer back.
 *
 * ```ts
 * const overview = await compose(
 *   { transactions: () => call(getTransactions, { accountId }), prices: () => call(getPrice, { symbol }) },
 *   { deadline: ctx.deadline, timeoutMs: { prices: 300 }, required: ['transactions'] },
 * );
 * ```
 */
export async function compose<P extends Record<string, ComposePart>, R extends keyof P & string = never>(
  parts: P,
  options: ComposeOptions<P, R> = {},
): Promise<Composition<P, R>> {
  const required = new Set<string>(options.required ?? []);
  for (const name of required) {
    if (!Object.hasOwn(parts, name)) {
      throw new ChassisError('CONFIG', `compose: the required part "${name}" is not one of the parts`);
    }
  }
  // Once a required part has failed nobody reads the others: their calls may stop.
  const abandon = new AbortController();
  const runs = Object.entries(parts).map(async ([name, part]): Promise<Outcome> => {
    const outcome = await runPart(name, part, options.timeoutMs?.[name], options.deadline, abandon.signal);
    if (!outcome.ok && required.has(name)) throw outcome.error;
    return outcome;
  });
  let outcomes: Outcome[];
  try {
    outcomes = await Promise.all(runs);
  } catch (error) {
    abandon.abort();
    throw error;
  }

  const data: Record<string, unknown> = {};
  const errors: Record<string, PartError> = {};
  for (const outcome of outcomes) {
    if (outcome.ok) {
      data[outcome.name] = outcome.value;
    } else {
      data[outcome.name] = null;
      errors[outcome.name] = partError(outcome.error);
    }
  }
  return { data, partial: Object.keys(errors).length > 0, errors } as Composition<P, R>;
}

async function runPart(
  name: string,
  part: ComposePart,
  ownTimeoutMs: number | undefined,
  deadline: number | undefined,
  abandoned: AbortSignal,
): Promise<Outcome> {
  const remainingMs = deadline === undefined ? undefined : deadline - Date.now();
  const ownIsShorter = ownTimeoutMs !== undefined && (remainingMs === undefined || ownTimeoutMs <= remainingMs);
  const budgetMs = ownIsShorter ? ownTimeoutMs : remainingMs;
  const late = () =>
    new ChassisError(
      'TIMEOUT',
      ownIsShorter
        ? `The part "${name}" took longer than its ${ownTimeoutMs} ms`
        : `The part "${name}" had not answered by the request's deadline`,
    );
  if (budgetMs !== undefined && budgetMs <= 0) return { name, ok: false, error: late() };

  const startedAt = Date.now();
  const controller = new AbortController();
  const stop = () => controller.abort();
  abandoned.addEventListener('abort', stop, { once: true });
  let timer: NodeJS.Timeout | undefined;
  try {
    const work = new Promise<unknown>((resolve) => resolve(part({ timeoutMs: budgetMs, signal: controller.signal })));
    const value =
      budgetMs === undefined
        ? await work
        : await Promise.race([
            work,
            new Promise<never>((_, reject) => {
              timer = setTimeout(() => {
                controller.abort();
                reject(late());
              }, budgetMs);
            }),
          ]);
    return { name, ok: true, value };
  } catch (error) {
    const failure = toChassisError(error);
    // The call carries the same budget as its own deadline, and its timer may fire before this one: a
    // TIMEOUT once the budget is spent is the part's lateness, said the same way whichever fired first.
    if (failure.code === 'TIMEOUT' && budgetMs !== undefined && Date.now() >= startedAt + budgetMs) {
      return { name, ok: false, error: late() };
    }
    return { name, ok: false, error: failure };
  } finally {
    clearTimeout(timer);
    abandoned.removeEventListener('abort', stop);
  }
}

function partError(error: ChassisError): PartError {
  // As in the gateway's error answers: an internal failure's message may say too much.
  const internal = error.code === 'INTERNAL' || error.code === 'CONFIG';
  return { code: error.code, message: internal ? 'The part failed inside the system' : error.message };
}
