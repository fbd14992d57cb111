import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ChassisError, defineService } from '@chassis/core';
import { Database, dataExtension, sql } from '@chassis/data';
import {
  makeTestPki,
  memoryTarget,
  postgresTarget,
  servers,
  skipUnlessInstalled,
  startPostgresTlsProxy,
  type TestPki,
  type TlsProxy,
  useCluster,
} from '@chassis/testing';
import pg from 'pg';

/**
 * TLS to PostgreSQL, set as libpq sets it (`sslmode`, `sslrootcert` in the URL). The machine's server
 * runs with `ssl = off` here and must not be reconfigured, so the TLS side is a proxy made for the test
 * that speaks PostgreSQL's own TLS opening (SSLRequest, `S`, handshake) with a certificate from a CA made
 * by openssl, refuses plain connections, and forwards the decrypted protocol to the real server. Against
 * the machine's server itself, `sslmode=require` is checked for what it does there: works when its ssl is
 * on, a clear CONFIG error when off.
 */
const postgres = await postgresTarget();
const skip = postgres.skip || skipUnlessInstalled('openssl', 'Debian package openssl');

async function refusal(opening: Promise<unknown>): Promise<ChassisError> {
  const error = await opening.then(
    async (db) => {
      await (db as Database).close();
      return assert.fail('the database opened');
    },
    (e: unknown) => e,
  );
  assert.ok(error instanceof ChassisError, `expected a ChassisError, got ${String(error)}`);
  assert.equal(error.retryable, false, error.message);
  return error;
}

function reasonOf(error: ChassisError): string | undefined {
  return (error.data as { reason?: string } | undefined)?.reason;
}

describe('PostgreSQL over TLS', { skip }, () => {
  let pki: TestPki;
  let proxy: TlsProxy;
  let otherHost: TlsProxy;
  let database: URL;
  const upstream = new URL(servers.postgres.url);
  const target = { host: upstream.hostname, port: Number(upstream.port || 5432) };
  const cluster = useCluster(memoryTarget());

  before(async () => {
    pki = await makeTestPki();
    proxy = await startPostgresTlsProxy(pki, target);
    otherHost = await startPostgresTlsProxy(pki, target, { certificate: 'other-host' });
    database = new URL(await postgres.newDatabase());
  });
  after(async () => {
    await proxy?.close();
    await otherHost?.close();
    await pki?.remove();
    await postgres.cleanup();
  });

  /** The test database's URL through `through` (a proxy), with `params` as its query. */
  function url(through: TlsProxy, params: Record<string, string>, host = '127.0.0.1'): string {
    const u = new URL(database);
    u.host = `${host}:${through.port}`;
    for (const [name, value] of Object.entries(params)) u.searchParams.set(name, value);
    return u.toString();
  }

  async function queryThrough(address: string): Promise<void> {
    const db = await Database.open(address);
    try {
      const result = await sql<{ answer: number }>`select 41 + 1 as answer`.execute(db.kysely);
      assert.equal(result.rows[0]?.answer, 42);
    } finally {
      await db.close();
    }
  }

  it('sslmode=require works through TLS (the endpoint serves TLS connections only)', async () => {
    await queryThrough(url(proxy, { sslmode: 'require' }));
    // The same endpoint without TLS is cut off: what worked went through TLS.
    const plain = await Database.open(url(proxy, {})).then(
      async (db) => {
        await db.close();
        return 'opened';
      },
      (e: unknown) => e,
    );
    assert.ok(plain instanceof ChassisError && plain.code === 'UNAVAILABLE', String(plain));
  });

  it('verify-full with the CA that signed the server certificate works, by IP and by name', async () => {
    await queryThrough(url(proxy, { sslmode: 'verify-full', sslrootcert: pki.caFile }));
    await queryThrough(url(proxy, { sslmode: 'verify-full', sslrootcert: pki.caFile }, 'localhost'));
  });

  it('verify-full with a CA that did not sign it: CONFIG naming sslrootcert, the file and the server', async () => {
    const error = await refusal(Database.open(url(proxy, { sslmode: 'verify-full', sslrootcert: pki.wrongCaFile })));
    assert.equal(error.code, 'CONFIG');
    assert.equal(reasonOf(error), 'TLS_UNTRUSTED_CERTIFICATE');
    for (const mention of [
      pki.wrongCaFile,
      'sslrootcert in the database URL',
      `PostgreSQL at 127.0.0.1:${proxy.port}`,
    ]) {
      assert.ok(error.message.includes(mention), `"${error.message}" names ${mention}`);
    }
  });

  it('require with a CA checks the chain as libpq does (verify-ca); without one it does not', async () => {
    const error = await refusal(Database.open(url(proxy, { sslmode: 'require', sslrootcert: pki.wrongCaFile })));
    assert.equal(reasonOf(error), 'TLS_UNTRUSTED_CERTIFICATE');
    await queryThrough(url(otherHost, { sslmode: 'require' }));
  });

  it('a certificate for another host: verify-ca accepts it, verify-full refuses it naming the host', async () => {
    await queryThrough(url(otherHost, { sslmode: 'verify-ca', sslrootcert: pki.caFile }));
    const error = await refusal(Database.open(url(otherHost, { sslmode: 'verify-full', sslrootcert: pki.caFile })));
    assert.equal(error.code, 'CONFIG');
    assert.equal(reasonOf(error), 'TLS_HOSTNAME_MISMATCH');
    assert.match(error.message, /DNS:db\.example\.internal, not for 127\.0\.0\.1/);
    assert.match(error.message, /subjectAltName/);
  });

  it('a CA file that does not exist: CONFIG naming it, before connecting', async () => {
    const missing = `${pki.dir}/no-such-ca.pem`;
    const error = await refusal(Database.open(url(proxy, { sslmode: 'verify-full', sslrootcert: missing })));
    assert.equal(error.code, 'CONFIG');
    assert.equal(reasonOf(error), 'TLS_FILE');
    assert.ok(error.message.includes(missing) && error.message.includes('sslrootcert'), error.message);
  });

  it('sslmode=prefer, which pg cannot honour, and an unknown sslmode: CONFIG saying which modes to use', async () => {
    for (const sslmode of ['prefer', 'verify_full']) {
      const error = await refusal(Database.open(url(proxy, { sslmode })));
      assert.equal(error.code, 'CONFIG');
      assert.equal(reasonOf(error), 'TLS_SSLMODE');
      assert.match(error.message, /verify-full/);
    }
  });

  it('a node whose database TLS is misconfigured stops at once instead of waiting for the database', async () => {
    const migrations = new URL('./fixtures/migrations/ledger/', import.meta.url);
    const started = Date.now();
    await assert.rejects(
      cluster.startNode([defineService({ name: `ledger-tls-${cluster.suffix}`, migrations })], {
        extensions: [dataExtension({ url: url(proxy, { sslmode: 'verify-full', sslrootcert: pki.wrongCaFile }) })],
      }),
      (error: unknown) => error instanceof ChassisError && error.code === 'CONFIG',
    );
    assert.ok(Date.now() - started < 5000, 'a TLS misconfiguration is not waited on');
  });

  it("sslmode=require against the machine's own server: works when its ssl is on, a CONFIG error saying so when off", async () => {
    const admin = new pg.Client({ connectionString: servers.postgres.url });
    await admin.connect();
    const ssl = (await admin.query<{ ssl: string }>('show ssl')).rows[0]?.ssl;
    await admin.end();
    const direct = new URL(database);
    direct.searchParams.set('sslmode', 'require');
    if (ssl === 'on') {
      await queryThrough(direct.toString());
      return;
    }
    const error = await refusal(Database.open(direct.toString()));
    assert.equal(error.code, 'CONFIG');
    assert.equal(reasonOf(error), 'TLS_NOT_OFFERED');
    assert.match(error.message, /Turn ssl on in the server .*or set sslmode=disable/);
  });
});
