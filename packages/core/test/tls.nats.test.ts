import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ChassisError, loadConfig } from '@chassis/core';
import { makeTestPki, skipUnlessInstalled, startTlsNats, type TestPki, type TlsNatsServer } from '@chassis/testing';
import { natsTransport } from '../src/transports/nats/index.ts';
import { assertNodeRefused, sellOrderOverTls } from './tls/scenario.ts';

/**
 * NATS over TLS against a real nats-server this test starts on a free port (never the machine's 4222),
 * requiring TLS and client certificates signed by a CA made here by openssl.
 */
const skip =
  skipUnlessInstalled('nats-server', 'Debian package nats-server') ||
  skipUnlessInstalled('openssl', 'Debian package openssl');

describe('NATS over TLS', { skip }, () => {
  let pki: TestPki;
  let server: TlsNatsServer;

  before(async () => {
    pki = await makeTestPki();
    server = await startTlsNats(pki, { verifyClients: true });
  });
  after(async () => {
    await server?.stop();
    await pki?.remove();
  });

  const env = () => ({
    CHASSIS_TRANSPORT: server.url,
    CHASSIS_TLS_CA_FILE: pki.caFile,
    CHASSIS_TLS_CERT_FILE: pki.clientCertFile,
    CHASSIS_TLS_KEY_FILE: pki.clientKeyFile,
  });

  it('the configuration accepts tls:// and the TLS files', () => {
    const config = loadConfig(env());
    assert.equal(config.CHASSIS_TRANSPORT, server.url);
    assert.equal(config.CHASSIS_TLS_CA_FILE, pki.caFile);
  });

  it('a call that makes a call, and the event it emits, over tls:// with mutual TLS', async () => {
    await sellOrderOverTls(env());
  });

  it('nats:// with the TLS files uses TLS too', async () => {
    await sellOrderOverTls({ ...env(), CHASSIS_TRANSPORT: `nats://127.0.0.1:${server.port}` });
  });

  it('a CA that did not sign the server certificate: CONFIG, naming the CA file and the server', async () => {
    await assertNodeRefused({ ...env(), CHASSIS_TLS_CA_FILE: pki.wrongCaFile }, 'TLS_UNTRUSTED_CERTIFICATE', [
      pki.wrongCaFile,
      'CHASSIS_TLS_CA_FILE',
      `NATS at 127.0.0.1:${server.port}`,
    ]);
  });

  it('no CA file: the system CAs do not know a private CA, and the message says to set CHASSIS_TLS_CA_FILE', async () => {
    const { CHASSIS_TLS_CA_FILE: _, ...withoutCa } = env();
    await assertNodeRefused(withoutCa, 'TLS_UNTRUSTED_CERTIFICATE', [
      'a CA the system trusts',
      'CHASSIS_TLS_CA_FILE is not set',
    ]);
  });

  it('a CA file that does not exist: CONFIG naming the file and the variable, before any connection', async () => {
    const missing = `${pki.dir}/no-such-ca.pem`;
    await assertNodeRefused({ ...env(), CHASSIS_TLS_CA_FILE: missing }, 'TLS_FILE', [missing, 'CHASSIS_TLS_CA_FILE']);
  });

  it("a key that is not the certificate's: CONFIG naming the files", async () => {
    await assertNodeRefused({ ...env(), CHASSIS_TLS_KEY_FILE: pki.serverKeyFile }, 'TLS_BAD_FILE', [
      pki.serverKeyFile,
      'CHASSIS_TLS_KEY_FILE is the private key of CHASSIS_TLS_CERT_FILE',
    ]);
  });

  it('a certificate without its key is refused by the configuration', () => {
    const { CHASSIS_TLS_KEY_FILE: _, ...withoutKey } = env();
    assert.throws(
      () => loadConfig(withoutKey),
      (error: unknown) =>
        error instanceof ChassisError && error.code === 'CONFIG' && /CHASSIS_TLS_KEY_FILE/.test(error.message),
    );
  });

  it('a server that verifies clients, and no client certificate: TRANSPORT error that says to set the client certificate', async () => {
    const transport = natsTransport({ url: server.url, tls: { caFile: pki.caFile } });
    try {
      const error = await transport.connect().then(
        () => assert.fail('connected without a client certificate'),
        (e: unknown) => e,
      );
      assert.ok(error instanceof ChassisError, String(error));
      assert.match(error.message, /CHASSIS_TLS_CERT_FILE/);
    } finally {
      await transport.close();
    }
  });
});
