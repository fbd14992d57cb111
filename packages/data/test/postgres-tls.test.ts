import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { ChassisError } from '@chassis/core';
import { postgresTls } from '../src/postgres-tls.ts';

/** How a database URL's libpq TLS settings become pg's options (the connections are in tls.postgres.test.ts). */
describe('PostgreSQL TLS settings', () => {
  const dir = mkdtempSync(join(tmpdir(), 'chassis-pg-tls-'));
  const ca = join(dir, 'ca.crt');
  writeFileSync(ca, '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n');
  after(() => rmSync(dir, { recursive: true, force: true }));
  const base = 'postgres://app:secret@db.internal:5432/app';

  it('no sslmode is plain, and the URL is passed on unchanged', () => {
    const tls = postgresTls(base, {});
    assert.equal(tls.ssl, false);
    assert.equal(tls.connectionString, base);
  });

  it('takes the TLS parameters out of the URL, so that pg does not read them its own way', () => {
    const tls = postgresTls(`${base}?sslmode=verify-full&sslrootcert=${ca}&application_name=x`, {});
    assert.equal(tls.connectionString, `${base}?application_name=x`);
    assert.ok(tls.ssl);
    assert.equal(tls.ssl.rejectUnauthorized, true);
    assert.equal(tls.ssl.checkServerIdentity, undefined, 'verify-full checks the host');
    assert.match(String(tls.ssl.ca), /BEGIN CERTIFICATE/);
  });

  it('require checks nothing, unless a CA is given (then verify-ca, as libpq); verify-ca skips only the host', () => {
    const require = postgresTls(`${base}?sslmode=require`, {});
    assert.ok(require.ssl && require.ssl.rejectUnauthorized === false);
    const requireWithCa = postgresTls(`${base}?sslmode=require&sslrootcert=${ca}`, {});
    assert.ok(requireWithCa.ssl && requireWithCa.ssl.rejectUnauthorized === true);
    const verifyCa = postgresTls(`${base}?sslmode=verify-ca`, {});
    assert.ok(verifyCa.ssl && verifyCa.ssl.rejectUnauthorized === true && verifyCa.ssl.checkServerIdentity);
  });

  it('falls back to PGSSLMODE and PGSSLROOTCERT, as libpq does; the URL wins', () => {
    const fromEnv = postgresTls(base, { PGSSLMODE: 'verify-full', PGSSLROOTCERT: ca });
    assert.equal(fromEnv.mode, 'verify-full');
    assert.equal(fromEnv.files.caFile, ca);
    assert.equal(fromEnv.names.caFile, 'PGSSLROOTCERT');
    assert.equal(postgresTls(`${base}?sslmode=disable`, { PGSSLMODE: 'verify-full' }).ssl, false);
  });

  it('refuses what cannot work, with CONFIG', () => {
    for (const url of [`${base}?sslmode=prefer`, `${base}?sslmode=on`, `${base}?sslrootcert=${ca}`]) {
      assert.throws(
        () => postgresTls(url, {}),
        (error: unknown) => error instanceof ChassisError && error.code === 'CONFIG' && /sslmode/.test(error.message),
        url,
      );
    }
    assert.throws(
      () => postgresTls(`${base}?sslmode=verify-full&sslcert=${ca}`, {}),
      (error: unknown) => error instanceof ChassisError && /sslkey/.test(error.message),
    );
  });
});
