/**
 * The node arguments that run a TypeScript file in a child process the way this process runs its own.
 * Node 22.18+ runs `.ts` itself (type stripping), so normally there are none; under the mutation runs
 * the tests go through tsx, which maps `@chassis/*` into Stryker's sandbox, and a child must too.
 */
export function typescriptArgs(execArgv: readonly string[] = process.execArgv): string[] {
  const throughTsx = execArgv.some(
    (arg, i) =>
      (arg === '--import' && /(^|\/)tsx(\/|$)/.test(execArgv[i + 1] ?? '')) || /^--import=.*\btsx\b/.test(arg),
  );
  return throughTsx ? ['--import', 'tsx'] : [];
}
