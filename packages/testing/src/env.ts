/**
 * Environment knobs that tune or narrow a test run. A knob that leaves tests out must say so in the
 * report (a `skip` with a reason), and a value the knob does not understand stops the file with the
 * reason: a typo that silently ran nothing would read as a green run.
 */

/** A whole number from `name`, at least `min`; `fallback` when it is not set. */
export function integerFromEnv(name: string, { fallback, min = 0 }: { fallback: number; min?: number }): number {
  const raw = process.env[name];
  if (raw === undefined) return fallback;
  const value = Number(raw.trim());
  if (raw.trim() === '' || !Number.isSafeInteger(value) || value < min) {
    throw new TypeError(`${name} is a whole number of at least ${min}, not "${raw}"`);
  }
  return value;
}

/**
 * A comma-separated choice among `allowed` from `name`, or `undefined` when it is not set (everything
 * runs). An empty list or a name not in `allowed` is an error, not a run of nothing.
 */
export function choiceFromEnv<T extends string>(name: string, allowed: readonly T[]): T[] | undefined {
  const raw = process.env[name];
  if (raw === undefined) return undefined;
  const chosen = raw
    .split(',')
    .map((part) => part.trim())
    .filter((part) => part !== '');
  const unknown = chosen.filter((part) => !(allowed as readonly string[]).includes(part));
  if (chosen.length === 0 || unknown.length > 0) {
    throw new TypeError(`${name} is a comma-separated list of ${allowed.join(', ')}, not "${raw}"`);
  }
  return chosen as T[];
}
