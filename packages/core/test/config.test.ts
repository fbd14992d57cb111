import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  ChassisError,
  defineService,
  envKnownPort,
  envLimit,
  envNumber,
  envPort,
  loadConfig,
  selectServices,
  tokenSecret,
  transportTlsFiles,
} from '@chassis/core';

describe('configuration from the environment', () => {
  it('defaults to the all-in-one memory transport with every service', () => {
    const config = loadConfig({});
    assert.equal(config.CHASSIS_TRANSPORT, 'memory');
    assert.deepEqual(config.SERVICES, []);
    assert.equal(config.CHASSIS_CALL_TIMEOUT_MS, 5000);
    assert.equal(config.CHASSIS_SERIALIZER, 'json');
    assert.equal(config.CHASSIS_NATS_RPC_ENVELOPE, 'frame');
  });

  it('reads transports, service lists and numbers', () => {
    const config = loadConfig({
      CHASSIS_TRANSPORT: 'nats://127.0.0.1:4222',
      SERVICES: 'orders, market ,',
      CHASSIS_CALL_TIMEOUT_MS: '250',
      LOG_LEVEL: 'debug',
    });
    assert.equal(config.CHASSIS_TRANSPORT, 'nats://127.0.0.1:4222');
    assert.deepEqual(config.SERVICES, ['orders', 'market']);
    assert.equal(config.CHASSIS_CALL_TIMEOUT_MS, 250);
    assert.equal(config.LOG_LEVEL, 'debug');
    assert.equal(loadConfig({ CHASSIS_NATS_RPC_ENVELOPE: 'headers' }).CHASSIS_NATS_RPC_ENVELOPE, 'headers');
    assert.throws(() => loadConfig({ CHASSIS_NATS_RPC_ENVELOPE: 'body' }), /CHASSIS_NATS_RPC_ENVELOPE="body"/);
  });

  it('reads the ops secret, refusing a short one', () => {
    assert.equal(
      loadConfig({ CHASSIS_OPS_SECRET: 'a-long-enough-ops-secret' }).CHASSIS_OPS_SECRET,
      'a-long-enough-ops-secret',
    );
    assert.throws(
      () => loadConfig({ CHASSIS_OPS_SECRET: 'short' }),
      (error: unknown) => error instanceof ChassisError && /CHASSIS_OPS_SECRET.*at least 16/.test(error.message),
    );
  });

  it('reads TLS to the broker: tls:// for NATS, amqps:// for RabbitMQ, and the certificate files', () => {
    const files = {
      CHASSIS_TLS_CA_FILE: '/etc/chassis/tls/ca.crt',
      CHASSIS_TLS_CERT_FILE: '/etc/chassis/tls/tls.crt',
      CHASSIS_TLS_KEY_FILE: '/etc/chassis/tls/tls.key',
    };
    for (const transport of ['tls://nats.internal:4222', 'nats://nats.internal:4222', 'amqps://u:p@mq:5671']) {
      const config = loadConfig({ CHASSIS_TRANSPORT: transport, ...files });
      assert.equal(config.CHASSIS_TRANSPORT, transport);
      assert.deepEqual(transportTlsFiles(config), {
        caFile: files.CHASSIS_TLS_CA_FILE,
        certFile: files.CHASSIS_TLS_CERT_FILE,
        keyFile: files.CHASSIS_TLS_KEY_FILE,
      });
    }
    assert.equal(transportTlsFiles(loadConfig({ CHASSIS_TRANSPORT: 'tls://nats.internal:4222' })), undefined);
  });

  it('refuses TLS files a transport would ignore, and a certificate without its key', () => {
    const refused = (env: Record<string, string>) => {
      try {
        loadConfig(env);
      } catch (error) {
        assert.ok(error instanceof ChassisError && error.code === 'CONFIG');
        return error.message;
      }
      return assert.fail('the configuration was accepted');
    };
    assert.match(
      refused({ CHASSIS_TLS_CA_FILE: '/ca.crt' }),
      /CHASSIS_TLS_CA_FILE set, but CHASSIS_TRANSPORT="memory"/,
    );
    assert.match(
      refused({ CHASSIS_TRANSPORT: 'amqp://guest:guest@mq:5672', CHASSIS_TLS_CA_FILE: '/ca.crt' }),
      /use amqps:\/\//,
    );
    assert.match(
      refused({ CHASSIS_TRANSPORT: 'tls://nats:4222', CHASSIS_TLS_CERT_FILE: '/tls.crt' }),
      /CHASSIS_TLS_CERT_FILE and CHASSIS_TLS_KEY_FILE go together/,
    );
  });

  it('fails at start with one error listing every problem', () => {
    const error = (() => {
      try {
        loadConfig({ CHASSIS_TRANSPORT: 'kafka://x', LOG_LEVEL: 'loud', CHASSIS_CALL_TIMEOUT_MS: '-5' });
      } catch (e) {
        return e;
      }
      return assert.fail('a bad configuration must be refused');
    })();
    assert.ok(error instanceof ChassisError);
    assert.equal(error.code, 'CONFIG');
    assert.match(error.message, /CHASSIS_TRANSPORT="kafka:\/\/x": must be "memory", a nats/);
    assert.match(error.message, /LOG_LEVEL="loud"/);
    assert.match(error.message, /CHASSIS_CALL_TIMEOUT_MS="-5"/);
    assert.equal((error.data as { problems: string[] }).problems.length, 3);
  });

  it('SERVICES picks services by name and names the unknown ones', () => {
    const orders = defineService({ name: 'orders' });
    const market = defineService({ name: 'market' });
    assert.deepEqual(
      selectServices([orders, market], ['market']).map((s) => s.name),
      ['market'],
    );
    assert.deepEqual(
      selectServices([orders, market], []).map((s) => s.name),
      ['orders', 'market'],
    );
    assert.throws(() => selectServices([orders, market], ['market', 'fees']), /"fees".*it has: orders, market/);
  });
});

describe("an app's own settings from the environment", () => {
  it('envNumber: unset or empty is undefined, a number is read, anything else is a CONFIG error naming the variable', () => {
    assert.equal(envNumber({}, 'PORT'), undefined);
    assert.equal(envNumber({ PORT: ' ' }, 'PORT'), undefined);
    assert.equal(envNumber({ PORT: '8080' }, 'PORT'), 8080);
    assert.equal(envNumber({ RATE: '0.5' }, 'RATE'), 0.5);
    assert.throws(
      () => envNumber({ ORDERS_STALE_AFTER_MS: '5s' }, 'ORDERS_STALE_AFTER_MS'),
      (error: unknown) =>
        error instanceof ChassisError &&
        error.code === 'CONFIG' &&
        error.message === 'ORDERS_STALE_AFTER_MS must be a number, not "5s"',
    );
  });

  it('envPort: the fallback when unset, false for off, 0 for any free port; anything else a CONFIG error', () => {
    assert.equal(envPort({}, 'PORT', 8080), 8080);
    assert.equal(envPort({ PORT: '' }, 'PORT', 8080), 8080);
    assert.equal(envPort({ PORT: '9090' }, 'PORT', 8080), 9090);
    assert.equal(envPort({ PORT: '0' }, 'PORT', 8080), 0);
    assert.equal(envPort({ PORT: 'off' }, 'PORT', 8080), false);
    for (const value of ['abc', '65536', '-1', '80.5']) {
      assert.throws(
        () => envPort({ GRPC_PORT: value }, 'GRPC_PORT', 50051),
        (error: unknown) =>
          error instanceof ChassisError &&
          error.code === 'CONFIG' &&
          error.message === `GRPC_PORT is a port (0 to 65535, 0 picks a free one) or off, not "${value}"`,
      );
    }
  });

  it('envKnownPort: a launcher needs a fixed port, so off and 0 are CONFIG errors too', () => {
    assert.equal(envKnownPort({}, 'PORT', 8080), 8080);
    assert.equal(envKnownPort({ PORT: '9090' }, 'PORT', 8080), 9090);
    for (const value of ['off', '0']) {
      assert.throws(
        () => envKnownPort({ PORT: value }, 'PORT', 8080),
        (error: unknown) =>
          error instanceof ChassisError &&
          error.message === `PORT must be a fixed port here (1 to 65535), not "${value}"`,
      );
    }
  });

  it('envLimit: the fallback when unset, false for off, else a number', () => {
    assert.equal(envLimit({}, 'RATE_LIMIT_PER_MINUTE', 300), 300);
    assert.equal(envLimit({ RATE_LIMIT_PER_MINUTE: 'off' }, 'RATE_LIMIT_PER_MINUTE', 300), false);
    assert.equal(envLimit({ RATE_LIMIT_PER_MINUTE: '60' }, 'RATE_LIMIT_PER_MINUTE', 300), 60);
    assert.throws(
      () => envLimit({ RATE_LIMIT_PER_MINUTE: 'lots' }, 'RATE_LIMIT_PER_MINUTE', 300),
      (error: unknown) => error instanceof ChassisError && error.code === 'CONFIG',
    );
  });

  it('tokenSecret: the first variable set wins; the development secret only outside production', () => {
    const variables = ['SHOP_JWT_SECRET', 'CHASSIS_JWT_SECRET'];
    assert.equal(tokenSecret({ CHASSIS_JWT_SECRET: 'b', SHOP_JWT_SECRET: 'a' }, 'dev', variables), 'a');
    assert.equal(tokenSecret({ CHASSIS_JWT_SECRET: 'b' }, 'dev', variables), 'b');
    assert.equal(tokenSecret({ CHASSIS_JWT_SECRET: 'b' }, 'dev'), 'b');
    assert.equal(tokenSecret({}, 'dev'), 'dev');
    assert.throws(
      () => tokenSecret({ NODE_ENV: 'production' }, 'dev', variables),
      (error: unknown) =>
        error instanceof ChassisError &&
        error.code === 'CONFIG' &&
        error.message.startsWith('SHOP_JWT_SECRET (or CHASSIS_JWT_SECRET) must be set in production'),
    );
    assert.throws(
      () => tokenSecret({ NODE_ENV: 'production' }, 'dev'),
      /^ChassisError: CHASSIS_JWT_SECRET must be set/,
    );
  });
});
