import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export function pgbenchPath(): string {
  for (const dir of (process.env.PATH ?? '').split(':')) {
    if (dir && existsSync(join(dir, 'pgbench'))) return join(dir, 'pgbench');
  }
  for (const version of ['17', '16', '15']) {
    const path = `/usr/lib/postgresql/${version}/bin/pgbench`;
    if (existsSync(path)) return path;
  }
  throw new Error('pgbench is not installed (Debian: apt-get install postgresql-client or postgresql-contrib)');
}

/** pgbench's connection arguments and environment (the password) for the server at `url`. */
export function pgbenchConnection(url: string): { args: string[]; env: NodeJS.ProcessEnv } {
  const parsed = new URL(url);
  return {
    args: ['-h', parsed.hostname, '-p', parsed.port || '5432', '-U', decodeURIComponent(parsed.username || 'postgres')],
    env: { ...process.env, PGPASSWORD: decodeURIComponent(parsed.password) },
  };
}

/**
 * pgbench -N (simple update: UPDATE accounts, SELECT, INSERT history) on a scratch database of the
 * server at `adminUrl`: what the server does with PostgreSQL's own small write transaction, the
 * baseline the benchmarks that write to PostgreSQL are reported against.
 */
export async function pgbench(
  adminUrl: string,
  database: string,
  { concurrency, seconds }: { concurrency: number; seconds: number },
): Promise<{ tps: number; output: string }> {
  const bin = pgbenchPath();
  const { args: connection, env } = pgbenchConnection(adminUrl);
  console.log(`pgbench: -i on ${database}`);
  await run(bin, ['-i', '-q', ...connection, database], { env });
  const args = ['-N', '-c', String(concurrency), '-j', '2', '-T', String(seconds), ...connection, database];
  console.log(`pgbench: ${args.slice(0, 6).join(' ')}`);
  const { stdout } = await run(bin, args, { env });
  const tps = /tps = ([\d.]+) \(without initial connection time\)/.exec(stdout)?.[1];
  if (!tps) throw new Error(`pgbench printed no TPS:\n${stdout}`);
  return { tps: Number(tps), output: stdout };
}
