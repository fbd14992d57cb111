import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { servers, skipUnlessUp } from './infra.ts';

/**
 * A database to run a suite on: the same suite runs against PGlite and the real PostgreSQL, and each
 * test's title says which.
 */
export interface DatabaseTarget {
  /** `pglite` or `postgres`. */
  name: string;
  skip: false | string;
  /**
   * A new, empty database's URL. `persistent` asks for one that outlives the process using it (a
   * child process killed and restarted): PGlite then keeps its data in a folder.
   */
  newDatabase(options?: { persistent?: boolean }): Promise<string>;
  /** Drops the databases and folders this target made. */
  cleanup(): Promise<void>;
}

export function pgliteTarget(): DatabaseTarget {
  const folders: string[] = [];
  return {
    name: 'pglite',
    skip: false,
    async newDatabase(options = {}) {
      if (!options.persistent) return 'pglite://memory';
      const folder = mkdtempSync(join(tmpdir(), 'chassis-pglite-'));
      folders.push(folder);
      return `pglite://${folder}`;
    },
    async cleanup() {
      for (const folder of folders.splice(0)) rmSync(folder, { recursive: true, force: true });
    },
  };
}

/** Each new database is `CREATE DATABASE chassis_test_<random>` on the local server, dropped at cleanup. */
export async function postgresTarget(): Promise<DatabaseTarget> {
  const admin = servers.postgres.url;
  const made: string[] = [];
  const withAdmin = async (statement: string) => {
    const client = new pg.Client({ connectionString: admin });
    await client.connect();
    try {
      await client.query(statement);
    } finally {
      await client.end();
    }
  };
  return {
    name: 'postgres',
    skip: await skipUnlessUp('postgres'),
    async newDatabase() {
      const name = `chassis_test_${randomBytes(5).toString('hex')}`;
      await withAdmin(`create database ${name}`);
      made.push(name);
      const url = new URL(admin);
      url.pathname = `/${name}`;
      return url.toString();
    },
    async cleanup() {
      for (const name of made.splice(0)) await withAdmin(`drop database if exists ${name} with (force)`);
    },
  };
}
