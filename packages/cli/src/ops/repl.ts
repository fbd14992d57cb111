import { appendFileSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Output } from '../output.ts';
import { type ConnectFlags, connect, shareConnection } from './connection.ts';
import { describeError } from './format.ts';

/** The commands the repl completes (the CLI's, without those that make no sense inside it). */
export const REPL_COMMANDS = [
  'nodes',
  'services',
  'actions',
  'events',
  'call',
  'emit',
  'dlq list',
  'dlq show',
  'dlq replay',
  'dlq purge',
  'sagas list',
  'sagas show',
  'sagas retry',
  'sagas abort',
  'outbox',
  'health',
  'bench',
  'help',
  'exit',
];

/**
 * Splits a line as a shell would for words and quotes (no variables, no globs) — except that a word
 * starting with `{` or `[` runs to its matching bracket as it is, so JSON needs no quoting in the repl.
 */
export function splitWords(line: string): string[] {
  const words: string[] = [];
  let current = '';
  let inWord = false;
  let quote: '"' | "'" | undefined;
  for (let i = 0; i < line.length; i++) {
    const char = line[i]!;
    if (quote) {
      if (char === quote) quote = undefined;
      else if (char === '\\' && quote === '"' && i + 1 < line.length) current += line[++i];
      else current += char;
    } else if (!inWord && (char === '{' || char === '[')) {
      const end = matchingBracket(line, i);
      words.push(line.slice(i, end + 1));
      i = end;
    } else if (char === '"' || char === "'") {
      quote = char;
      inWord = true;
    } else if (/\s/.test(char)) {
      if (inWord) words.push(current);
      current = '';
      inWord = false;
    } else {
      current += char;
      inWord = true;
    }
  }
  if (inWord) words.push(current);
  return words;
}

/** Where the bracket opened at `start` closes (strings skipped); the line's end if it never does. */
function matchingBracket(line: string, start: number): number {
  let depth = 0;
  let inString = false;
  for (let i = start; i < line.length; i++) {
    const char = line[i];
    if (inString) {
      if (char === '\\') i++;
      else if (char === '"') inString = false;
    } else if (char === '"') inString = true;
    else if (char === '{' || char === '[') depth++;
    else if (char === '}' || char === ']') {
      depth--;
      if (depth === 0) return i;
    }
  }
  return line.length - 1;
}

/**
 * Completions of a line: a command's name, then for call and bench an action's, for emit an event's.
 * The names come from the system once, when the repl starts.
 */
export function complete(line: string, names: { actions: string[]; events: string[] }): [string[], string] {
  const words = line.split(/\s+/);
  const last = words.at(-1) ?? '';
  const before = words.slice(0, -1).join(' ');
  let candidates: string[];
  if (words.length <= 1) candidates = [...new Set(REPL_COMMANDS.map((c) => c.split(' ')[0]!))];
  else if (words.length === 2 && (before === 'dlq' || before === 'sagas'))
    candidates = REPL_COMMANDS.filter((c) => c.startsWith(`${before} `)).map((c) => c.split(' ')[1]!);
  else if (words.length === 2 && (before === 'call' || before === 'bench')) candidates = names.actions;
  else if (words.length === 2 && before === 'emit') candidates = names.events;
  else candidates = [];
  const hits = candidates.filter((c) => c.startsWith(last));
  return [hits.length > 0 ? hits : candidates, last];
}

export function historyFile(): string {
  return process.env.CHASSIS_HISTORY ?? join(homedir(), '.chassis_history');
}

/**
 * `chassis repl`: one connection, then the same commands line by line, with completion and a history
 * kept across sessions. A failing command prints its one line and the repl goes on.
 */
export async function repl(
  flags: ConnectFlags,
  output: Output,
  run: (args: string[]) => Promise<number>,
): Promise<number> {
  const connection = await connect(flags).catch((error: unknown) => {
    throw describeError(error);
  });
  shareConnection(connection);
  const names = { actions: [] as string[], events: [] as string[] };
  try {
    for (const nodeId of await connection.nodeIds()) {
      const actions = (await connection.ops(nodeId, 'actions', {})) as { name: string }[];
      const events = (await connection.ops(nodeId, 'events', {})) as { name: string }[];
      names.actions.push(...actions.map((a) => a.name));
      names.events.push(...events.map((e) => e.name));
    }
  } catch (error) {
    // Still useful without completion of names (a token that opens calls but not the ops API, say).
    output.say(`chassis: names not loaded for completion: ${describeError(error).message}`);
  }
  names.actions = [...new Set(names.actions)].sort();
  names.events = [...new Set(names.events)].sort();

  const file = historyFile();
  let history: string[] = [];
  try {
    history = readFileSync(file, 'utf8').split('\n').filter(Boolean).reverse().slice(0, 500);
  } catch {
    // No history yet.
  }
  const rl = createInterface({
    input: process.stdin,
    output: process.stdout,
    terminal: process.stdin.isTTY === true,
    history,
    historySize: 500,
    completer: (line: string) => complete(line, names),
    prompt: `chassis ${connection.target}> `,
  });
  output.say(`connected to ${connection.target}; "help" lists the commands, Tab completes, "exit" or Ctrl-D leaves`);
  let last = 0;
  // Piped input ends before the last command is done; prompting then would throw.
  let closed = false;
  rl.on('close', () => {
    closed = true;
  });
  const tty = process.stdin.isTTY === true;
  try {
    if (tty) rl.prompt();
    for await (const line of rl) {
      const words = splitWords(line.trim());
      if (words.length > 0) {
        if (['exit', 'quit', '.exit'].includes(words[0]!)) break;
        try {
          appendFileSync(file, `${line.trim()}\n`);
        } catch {
          // A history that cannot be written is not worth stopping for.
        }
        if (words[0] === 'repl') output.say('chassis: already in the repl');
        else last = await run(words);
      }
      if (tty && !closed) rl.prompt();
    }
  } finally {
    rl.close();
    shareConnection(undefined);
    await connection.close();
  }
  return last;
}
