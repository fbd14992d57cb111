import type { ConnectionOptions } from 'node:tls';
import { ChassisError, readTlsFiles, type TlsFiles, type TlsSettingNames } from '@chassis/core';

/**
 * TLS to PostgreSQL, configured as libpq (psql, every PostgreSQL tool) is: `sslmode`, `sslrootcert`,
 * `sslcert` and `sslkey` in the URL (`postgres://app@db:5432/app?sslmode=verify-full&sslrootcert=/etc/pg/ca.crt`),
 * else the `PGSSLMODE`, `PGSSLROOTCERT`, `PGSSLCERT` and `PGSSLKEY` environment variables.
 *
 * - `disable` (or nothing): no TLS.
 * - `require`: TLS, the server's certificate not checked — unless a CA is given, which makes it
 *   `verify-ca`, as in libpq. (`no-verify`, pg's own name, is `require` without that exception.)
 * - `verify-ca`: TLS, the certificate must be signed by the CA (`sslrootcert`; else the system CAs).
 * - `verify-full`: `verify-ca`, and the certificate must be for the host the URL names.
 * - `prefer` and `allow` are refused: libpq falls back to plain text when TLS fails, the `pg` client
 *   cannot, and guessing either way would be wrong for someone; the message asks for an explicit mode.
 *
 * Done here rather than by `pg` (whose connection string parser knows these parameters) because `pg`
 * treats `require` and `verify-ca` as `verify-full` and reads the files with a bare `ENOENT` when one is
 * missing; here a missing file is a `CONFIG` error that names it, and a renewed certificate in a mounted
 * Secret is read by the next connection.
 */

const MODES = ['disable', 'require', 'no-verify', 'verify-ca', 'verify-full'] as const;
export type PostgresSslMode = (typeof MODES)[number];

const TLS_PARAMETERS = ['sslmode', 'sslrootcert', 'sslcert', 'sslkey'] as const;

export interface PostgresTls {
  /** The URL without the TLS parameters, for `pg`'s `connectionString` (whose own reading of them would win). */
  readonly connectionString: string;
  /** What `pg`'s `ssl` takes: false, or the options of `tls.connect`. */
  readonly ssl: false | ConnectionOptions;
  readonly mode: PostgresSslMode;
  /** Where `sslmode` was set (`sslmode in the database URL` or `PGSSLMODE`), for messages. */
  readonly modeSetting: string;
  readonly files: TlsFiles;
  /** Where each file was set, for messages. */
  readonly names: TlsSettingNames;
}

/** Reads the TLS settings of a `postgres://` URL (and the `PGSSL*` environment); `CONFIG` when they cannot work. */
export function postgresTls(url: string, env: Record<string, string | undefined> = process.env): PostgresTls {
  const parsed = new URL(url);
  const fromUrl = (name: (typeof TLS_PARAMETERS)[number]) => parsed.searchParams.get(name) ?? undefined;
  const setting = (name: (typeof TLS_PARAMETERS)[number]) => {
    const value = fromUrl(name);
    if (value !== undefined) return { value, where: `${name} in the database URL`, inUrl: true };
    const variable = `PG${name.toUpperCase()}`;
    const fromEnv = env[variable] || undefined;
    return { value: fromEnv, where: fromEnv ? variable : `${name} in the database URL`, inUrl: false };
  };
  const mode = setting('sslmode');
  const rootcert = setting('sslrootcert');
  const cert = setting('sslcert');
  const key = setting('sslkey');
  for (const name of TLS_PARAMETERS) parsed.searchParams.delete(name);
  const names: TlsSettingNames = { caFile: rootcert.where, certFile: cert.where, keyFile: key.where };
  // libpq's `sslrootcert=system`: the system's CAs, as when none is given.
  const caFile = rootcert.value === 'system' ? undefined : rootcert.value;
  const files: TlsFiles = {
    ...(caFile ? { caFile } : {}),
    ...(cert.value ? { certFile: cert.value } : {}),
    ...(key.value ? { keyFile: key.value } : {}),
  };
  const where = `PostgreSQL at ${parsed.host}`;
  const requested = mode.value ?? 'disable';
  if (requested === 'prefer' || requested === 'allow') {
    throw new ChassisError(
      'CONFIG',
      `sslmode=${requested} (${mode.where}) for ${where} is not supported: the client cannot fall back from TLS to plain text as libpq does. ` +
        'Choose sslmode=verify-full (TLS, certificate and host checked), verify-ca, require (TLS, not checked) or disable',
      { retryable: false, data: { reason: 'TLS_SSLMODE', sslmode: requested } },
    );
  }
  if (!(MODES as readonly string[]).includes(requested)) {
    throw new ChassisError(
      'CONFIG',
      `sslmode=${requested} (${mode.where}) for ${where} is not an sslmode: use disable, require, verify-ca or verify-full`,
      { retryable: false, data: { reason: 'TLS_SSLMODE', sslmode: requested } },
    );
  }
  const sslmode = requested as PostgresSslMode;
  const connectionString = parsed.toString();
  if (sslmode === 'disable') {
    // libpq ignores the PGSSL* files when TLS is off; in the URL, they show TLS was meant.
    const stray = [rootcert, cert, key].find((s) => s.inUrl);
    if (stray) {
      throw new ChassisError(
        'CONFIG',
        `${stray.where} is set but sslmode is disable (or unset) for ${where}: add sslmode=verify-full (or require) to use TLS`,
        { retryable: false, data: { reason: 'TLS_SSLMODE', sslmode } },
      );
    }
    return { connectionString, ssl: false, mode: sslmode, modeSetting: mode.where, files, names };
  }
  // Checked now: a missing file fails the start with its name, not the first connection with ENOENT.
  readTlsFiles(files, names);
  const verifyChain = sslmode === 'verify-ca' || sslmode === 'verify-full' || (sslmode === 'require' && caFile);
  const ssl: ConnectionOptions = { rejectUnauthorized: Boolean(verifyChain) };
  if (sslmode !== 'verify-full') ssl.checkServerIdentity = () => undefined;
  rereadAtEachConnection(ssl, files, names);
  return { connectionString, ssl, mode: sslmode, modeSetting: mode.where, files, names };
}

/**
 * Makes `ca`, `cert` and `key` getters that read their file whenever `pg` opens a connection (it copies
 * the options then), so a Secret renewed under a running pool is used by its next connection. A read
 * that fails then (the file between two versions) keeps the last content rather than throwing inside
 * `pg`'s socket handler, where nothing could catch it.
 */
function rereadAtEachConnection(ssl: ConnectionOptions, files: TlsFiles, names: TlsSettingNames): void {
  const fields = [
    ['ca', 'caFile'],
    ['cert', 'certFile'],
    ['key', 'keyFile'],
  ] as const;
  let last = readTlsFiles(files, names);
  for (const [field, file] of fields) {
    if (!files[file]) continue;
    Object.defineProperty(ssl, field, {
      enumerable: true,
      get() {
        try {
          last = readTlsFiles(files, names);
        } catch {
          // Keep `last`: the previous files still describe the server until the new ones are readable.
        }
        return last[field];
      },
    });
  }
}
