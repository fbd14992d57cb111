import { readFileSync } from 'node:fs';
import { isChassisError } from '@chassis/core';
import { CliError, type Output } from '../output.ts';

/** Rows as an aligned table on stdout, its header bold on a terminal; "(none)" when there are none. */
export function printTable(output: Output, columns: string[], rows: (string | number | boolean | null)[][]): void {
  if (rows.length === 0) {
    output.out('(none)');
    return;
  }
  const cells = rows.map((row) => row.map((cell) => (cell === null ? '-' : String(cell))));
  const widths = columns.map((column, i) => Math.max(column.length, ...cells.map((row) => (row[i] ?? '').length)));
  const line = (row: string[]) =>
    row
      .map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  output.out([output.style('bold', line(columns.map((c) => c.toUpperCase())), 'out'), ...cells.map(line)].join('\n'));
}

export function printJson(output: Output, value: unknown): void {
  output.out(JSON.stringify(value, null, 2));
}

/**
 * A JSON argument: inline (`'{"name":"x"}'`), `@file`, or `@-` for stdin; nothing is `{}`. A bad one is a
 * usage error that says what went wrong.
 */
export function readJsonArgument(text: string | undefined, what: string): unknown {
  if (text === undefined || text.trim() === '') return {};
  let source = text;
  if (text.startsWith('@')) {
    const file = text.slice(1);
    try {
      source = readFileSync(file === '-' ? 0 : file, 'utf8');
    } catch (error) {
      throw new CliError(`Cannot read ${what} from ${file}: ${(error as NodeJS.ErrnoException).code ?? error}`, {
        usage: true,
      });
    }
  }
  try {
    return JSON.parse(source);
  } catch (error) {
    throw new CliError(
      `The ${what} is not JSON (${(error as Error).message}); give it as '{"field":"value"}' in single quotes, or @file.json`,
      { usage: true },
    );
  }
}

/** What a user should do about an error the system answered, after its code and message. */
function hint(code: string): string {
  switch (code) {
    case 'UNAUTHENTICATED':
      return ' (pass the ops secret with --secret or CHASSIS_OPS_SECRET, or an admin token with --token or CHASSIS_TOKEN)';
    case 'FORBIDDEN':
      return ' (the ops API needs a token with the admin role, or the ops secret)';
    case 'NO_SERVICE':
      return ' (`chassis actions` lists what the running nodes serve)';
    case 'UNAVAILABLE':
      return ' (start the system, or point --ops / CHASSIS_TRANSPORT at it)';
    default:
      return '';
  }
}

/** An error of the system as one line: its code, message, field errors and what to do. */
export function describeError(error: unknown): CliError {
  if (error instanceof CliError) return error;
  if (!isChassisError(error)) return new CliError(error instanceof Error ? error.message : String(error));
  const data = error.data as { fields?: { path: string; message: string }[] } | undefined;
  const fields =
    Array.isArray(data?.fields) &&
    data.fields.length > 0 &&
    !error.message.includes(`${data.fields[0]!.path}: ${data.fields[0]!.message}`)
      ? ` — ${data.fields.map((f) => `${f.path || '(input)'}: ${f.message}`).join('; ')}`
      : '';
  return new CliError(`${error.code}: ${error.message}${fields}${hint(error.code)}`);
}

/** Runs `work`, turning what the system answered into one line. */
export async function answered<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    throw describeError(error);
  }
}

export function truncate(text: string, width: number): string {
  return text.length <= width ? text : `${text.slice(0, width - 1)}…`;
}
