import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';

const EXIT_WITH_PARENT = new URL('./exit-with-parent.ts', import.meta.url).href;

/** One process of a system started as several on this machine (an app's distributed start, a chaos test). */
export interface ProcessSpec {
  /** Its name: the prefix of its output lines, and how `kill` finds it. */
  name: string;
  /** The script it runs, with this process's Node (`process.execPath`). */
  script: string;
  /** Set on top of this process's environment. */
  env?: Readonly<Record<string, string>>;
  /** Node's own arguments, before the script (`--cpu-prof`, say). */
  nodeArgs?: readonly string[];
  /**
   * When `start` holds it up (60 s at most, and not past the process's exit): a URL that answers 2xx
   * (a gateway's health), or its first line of output (a node without HTTP prints once it runs). Not
   * waited for without it.
   */
  ready?: { url: string } | 'first-line';
}

export interface RunningProcess {
  readonly spec: ProcessSpec;
  readonly child: ChildProcess;
  /** Resolves when the process has exited. */
  readonly exited: Promise<void>;
}

export interface ProcessGroup {
  /** By name: the latest start of each. */
  readonly processes: ReadonlyMap<string, RunningProcess>;
  /** Starts a process (again, after a kill: its spec is all it takes) and waits for its `readyUrl`. */
  start(spec: ProcessSpec): Promise<RunningProcess>;
  /** SIGKILL, as a crash: no drain, nothing flushed. */
  kill(name: string): Promise<void>;
  /** SIGTERM to every process (each drains), then SIGKILL to any still running 15 s later. */
  stop(): Promise<void>;
}

/**
 * Processes started side by side, each line of their output passed to `output` behind its name — the
 * launcher behind every app's `npm run start:*:distributed`, its distributed tests and its benchmark.
 * The processes stop when this one ends, however it ends (a SIGKILLed test run leaves no orphans).
 */
export function processGroup(options: { output?: (line: string) => void } = {}): ProcessGroup {
  const output = options.output ?? ((line: string) => console.log(line));
  const processes = new Map<string, RunningProcess>();
  return {
    processes,
    async start(spec) {
      const child = spawn(process.execPath, ['--import', EXIT_WITH_PARENT, ...(spec.nodeArgs ?? []), spec.script], {
        env: { ...process.env, ...spec.env },
        // stdin is a pipe only this process holds: when it ends, so do its children (exit-with-parent.ts).
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      const prefix = `[${spec.name}]`.padEnd(Math.max(12, spec.name.length + 3));
      for (const stream of [child.stdout, child.stderr]) {
        let buffered = '';
        stream?.on('data', (chunk: Buffer) => {
          buffered += chunk.toString();
          const lines = buffered.split('\n');
          buffered = lines.pop() ?? '';
          for (const line of lines) if (line) output(`${prefix} ${line}`);
        });
      }
      const running = { spec, child, exited: once(child, 'exit').then(() => undefined) };
      processes.set(spec.name, running);
      if (spec.ready === 'first-line') await firstLine(running);
      else if (spec.ready) await waitForHttp(spec.ready.url, spec.name, { exited: running.exited });
      return running;
    },
    async kill(name) {
      const running = processes.get(name);
      if (!running) throw new Error(`No process ${name}; there are ${[...processes.keys()].join(', ')}`);
      running.child.kill('SIGKILL');
      await running.exited;
    },
    async stop() {
      const running = [...processes.values()];
      for (const { child } of running) child.kill('SIGTERM');
      await Promise.race([
        Promise.all(running.map((p) => p.exited)),
        new Promise((resolve) => setTimeout(resolve, 15_000)),
      ]);
      for (const { child } of running) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    },
  };
}

function firstLine({ spec, child, exited }: RunningProcess, timeoutMs = 60_000): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`${spec.name} printed nothing within ${timeoutMs / 1000} s`)),
      timeoutMs,
    );
    child.stdout?.once('data', () => {
      clearTimeout(timer);
      resolve();
    });
    void exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`${spec.name} exited with ${child.exitCode ?? child.signalCode} before it started`));
    });
  });
}

/** Waits until `url` answers 2xx: `timeoutMs` at most (default 60 s), and not past `exited`. */
export async function waitForHttp(
  url: string,
  what: string,
  { timeoutMs = 60_000, exited }: { timeoutMs?: number; exited?: Promise<unknown> } = {},
): Promise<void> {
  let gone = false;
  void exited?.then(() => {
    gone = true;
  });
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (gone) throw new Error(`${what} exited before it answered at ${url}`);
    try {
      if ((await fetch(url, { signal: AbortSignal.timeout(1000) })).ok) return;
    } catch {
      // not up yet
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`${what} did not answer at ${url} within ${timeoutMs / 1000} s`);
}
