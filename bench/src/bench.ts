import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';

/**
 * `npm run bench`: the RPC benchmarks one after another, each in a process of its own so that neither
 * runs on a heap or JIT state the other left. `BENCH_CASES` (e.g. `local-call`) chooses which; the other
 * settings pass through the environment to each. Exits 1 if any of them did.
 */

const CASES = ['local-call', 'rpc-nats'];

async function main(): Promise<number> {
  const chosen = (process.env.BENCH_CASES ?? CASES.join(',')).split(',').map((name) => name.trim());
  const unknown = chosen.filter((name) => !CASES.includes(name));
  if (unknown.length > 0) {
    console.error(`BENCH_CASES names ${unknown.join(', ')}; the benchmarks are ${CASES.join(', ')}`);
    return 1;
  }
  let exitCode = 0;
  for (const name of chosen) {
    const script = fileURLToPath(new URL(`./${name}.ts`, import.meta.url));
    const child = spawn(process.execPath, [...process.execArgv, script], { stdio: 'inherit' });
    const [code] = (await once(child, 'exit')) as [number | null];
    if (code !== 0) exitCode = 1;
    console.log('');
  }
  return exitCode;
}

process.exitCode = await main();
