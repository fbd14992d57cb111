import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ChassisError, loadConfig } from '@chassis/core';
import {
  makeTestPki,
  removeRabbitmqTestState,
  servers,
  skipUnlessInstalled,
  skipUnlessUp,
  startTlsProxy,
  type TestPki,
  type TlsProxy,
} from '@chassis/testing';
import { amqpTransport } from '../src/transports/amqp/index.ts';
import { assertNodeRefused, sellOrderOverTls } from './tls/scenario.ts';

/**
 * RabbitMQ over `amqps://`: a TLS endpoint made here (Node's tls server, with a certificate from a CA
 * made by openssl, asking for client certificates) in front of the machine's real RabbitMQ on 5672, as a
 * TLS listener or a TLS-terminating sidecar would be. The broker's own configuration is not touched.
 */
const skip = (await skipUnlessUp('rabbitmq')) || skipUnlessInstalled('openssl', 'Debian package openssl');

describe('RabbitMQ over TLS (amqps://)', { skip }, () => {
  let pki: TestPki;
  let proxy: TlsProxy;
  const suffixes: string[] = [];
  const upstream = new URL(servers.rabbitmq.url);
  const credentials = `${upstream.username}:${upstream.password}`;

  before(async () => {
    pki = await makeTestPki();
    proxy = await startTlsProxy(
      pki,
      { host: upstream.hostname, port: Number(upstream.port || 5672) },
      { verifyClients: true },
    );
  });
  after(async () => {
    await proxy?.close();
    await pki?.remove();
    await removeRabbitmqTestState(servers.rabbitmq.url, suffixes);
  });

  const url = () => `amqps://${credentials}@127.0.0.1:${proxy.port}`;
  const env = () => ({
    CHASSIS_TRANSPORT: url(),
    CHASSIS_TLS_CA_FILE: pki.caFile,
    CHASSIS_TLS_CERT_FILE: pki.clientCertFile,
    CHASSIS_TLS_KEY_FILE: pki.clientKeyFile,
  });

  it('a call that makes a call, and the event it emits, over amqps:// with mutual TLS', async () => {
    suffixes.push(await sellOrderOverTls(env()));
  });

  it('a CA that did not sign the server certificate: CONFIG, naming the CA file and the server', async () => {
    await assertNodeRefused({ ...env(), CHASSIS_TLS_CA_FILE: pki.wrongCaFile }, 'TLS_UNTRUSTED_CERTIFICATE', [
      pki.wrongCaFile,
      'CHASSIS_TLS_CA_FILE',
      `RabbitMQ at 127.0.0.1:${proxy.port}`,
    ]);
  });

  it('no client certificate where the broker asks for one: CONFIG, saying to set the client certificate', async () => {
    const { CHASSIS_TLS_CERT_FILE: _c, CHASSIS_TLS_KEY_FILE: _k, ...withoutClient } = env();
    await assertNodeRefused(withoutClient, 'TLS_CLIENT_CERTIFICATE_REJECTED', [
      'CHASSIS_TLS_CERT_FILE',
      `RabbitMQ at 127.0.0.1:${proxy.port}`,
    ]);
  });

  it('amqps:// to a port without TLS (the plain 5672): CONFIG, saying the server does not speak TLS there', async () => {
    await assertNodeRefused(
      { ...env(), CHASSIS_TRANSPORT: `amqps://${credentials}@${upstream.hostname}:${upstream.port || 5672}` },
      'TLS_NOT_OFFERED',
      ['does not offer TLS'],
    );
  });

  it('TLS files with amqp:// are refused by the configuration: they would be ignored', () => {
    assert.throws(
      () => loadConfig({ ...env(), CHASSIS_TRANSPORT: servers.rabbitmq.url }),
      (error: unknown) => error instanceof ChassisError && error.code === 'CONFIG' && /amqps:\/\//.test(error.message),
    );
  });

  it('the transport alone: TLS files with an amqp:// URL are a CONFIG error', () => {
    assert.throws(
      () => amqpTransport({ url: servers.rabbitmq.url, tls: { caFile: pki.caFile } }),
      (error: unknown) => error instanceof ChassisError && error.code === 'CONFIG' && /amqps:\/\//.test(error.message),
    );
  });
});
