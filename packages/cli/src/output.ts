import { styleText } from 'node:util';

/**
 * How the command talks: results on stdout (so they can be piped: `chassis openapi > api.json`), everything
 * meant for a person on stderr. Colours only where a person reads them: `styleText` checks that the
 * stream is a TTY and honours NO_COLOR, NODE_DISABLE_COLORS and FORCE_COLOR.
 */
export interface Output {
  /** A result, on stdout. */
  out(text: string): void;
  /** Progress and explanations, on stderr. */
  say(text: string): void;
  /** `text` in a style, when the stream shows styles. */
  style(format: Parameters<typeof styleText>[0], text: string, stream?: 'out' | 'err'): string;
}

export const processOutput: Output = {
  out: (text) => {
    process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
  },
  say: (text) => {
    process.stderr.write(text.endsWith('\n') ? text : `${text}\n`);
  },
  style: (format, text, stream = 'err') =>
    styleText(format, text, { stream: stream === 'out' ? process.stdout : process.stderr }),
};

/**
 * An error the user can act on: printed as one line, `chassis: <message>`, never with a stack trace.
 * `usage` errors (a bad name, a missing argument) exit with 2, failures with 1.
 */
export class CliError extends Error {
  readonly exitCode: number;

  constructor(message: string, options: { usage?: boolean } = {}) {
    super(message);
    this.name = 'CliError';
    this.exitCode = options.usage ? 2 : 1;
  }
}

/** One line for any error: its message's first line (a CliError's, or an unexpected one's, with its code). */
export function oneLine(error: unknown): string {
  if (error instanceof CliError) return firstLine(error.message);
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    const prefix = typeof code === 'string' && !error.message.startsWith(code) ? `${code}: ` : '';
    return `${prefix}${firstLine(error.message)}`;
  }
  return firstLine(String(error));
}

function firstLine(text: string): string {
  const lines = text.split('\n').filter((line) => line.trim() !== '');
  // A multi-line message (a config error listing every problem) is joined, not cut: each part matters.
  return lines.map((line) => line.trim().replace(/^- /, '')).join('; ');
}
