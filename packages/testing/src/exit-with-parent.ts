import type { Socket } from 'node:net';

/**
 * Loaded (`--import`) into every process a process group starts. Its stdin is a pipe whose other end
 * only the group's parent holds, so the pipe's end means the parent is gone — even SIGKILLed, when no
 * code of the parent's ran to stop its children. The process then stops as on SIGTERM (a node drains),
 * and exits at the latest 20 s later, so no orphan keeps ports, connections and broker consumers.
 */
const DRAIN_LIMIT_MS = 20_000;

const stdin = process.stdin as Partial<Socket> & NodeJS.ReadStream;
stdin.on('end', () => {
  setTimeout(() => process.exit(1), DRAIN_LIMIT_MS).unref();
  process.kill(process.pid, 'SIGTERM');
});
stdin.on('error', () => {});
stdin.resume();
// Watching the pipe must not keep a process alive that has nothing else to do (started by hand, stdin may
// be a file, which has no handle to unref).
stdin.unref?.();
