import pg from 'pg';
import { postgresTls } from './postgres-tls.ts';

/**
 * Creates the PostgreSQL database a `postgres://` URL names if the server has none of that name (through
 * the server's `postgres` database, with the URL's credentials and TLS). An app's distributed start
 * calls it before its processes open the database, which they would otherwise refuse as a `CONFIG`
 * error. Other URLs need nothing: PGlite makes its folder, and on MariaDB the migrations create each
 * service's database.
 */
export async function createDatabaseIfMissing(databaseUrl: string): Promise<void> {
  if (!/^postgres(ql)?:\/\//.test(databaseUrl)) return;
  const url = new URL(databaseUrl);
  const name = decodeURIComponent(url.pathname.slice(1));
  if (name === '' || name === 'postgres') return;
  url.pathname = '/postgres';
  const tls = postgresTls(url.toString());
  const admin = new pg.Client({ connectionString: tls.connectionString, ssl: tls.ssl });
  await admin.connect();
  try {
    const exists = await admin.query('select 1 from pg_database where datname = $1', [name]);
    if (exists.rowCount === 0) {
      // 42P04: another process created it since the look.
      await admin.query(`create database "${name.replaceAll('"', '""')}"`).catch((error: { code?: string }) => {
        if (error.code !== '42P04') throw error;
      });
    }
  } finally {
    await admin.end();
  }
}
