import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ChassisError } from '@chassis/core';
import { errorBodySchema } from '@chassis/gateway';
import { type BankApi, startBankApi } from './bank-api.ts';

/*
 * The gateway's request context, metrics and error answers are root plugins, not encapsulated: a plugin
 * given to `register` in a scope of its own — as GraphQL is — still gets the request id, the deadline,
 * the error shape and the request histogram, and its handlers see the same context through the tools.
 */
describe('gateway plugins: what a registered plugin in its own scope gets', () => {
  let api: BankApi;
  let seenDeadline: number | undefined;
  before(async () => {
    api = await startBankApi({
      register: async (app, tools) => {
        await app.register(async (scope) => {
          scope.get('/own/ok', async (request) => {
            seenDeadline = tools.deadlineOf(request);
            tools.recordOutcome(request, 'OWN_OUTCOME');
            return { ok: true };
          });
          scope.get('/own/fails', async () => {
            throw new ChassisError('CONFLICT', 'the plugin refused');
          });
        });
      },
    });
  });
  after(() => api.close());

  it('the request id, the deadline the client asked for, and the outcome it records in the histogram', async () => {
    const started = Date.now();
    const answer = await api.gateway.app.inject({
      method: 'GET',
      url: '/own/ok',
      headers: { 'x-request-id': 'own-1', 'request-timeout': '2' },
    });
    assert.equal(answer.statusCode, 200, answer.body);
    assert.equal(answer.headers['x-request-id'], 'own-1');
    assert.ok(seenDeadline !== undefined && seenDeadline >= started + 2000 && seenDeadline <= Date.now() + 2000);
    const text = await api.node.metrics.registry.metrics();
    assert.match(
      text,
      /chassis_http_server_duration_seconds_count\{method="GET",route="\/own\/ok",status="200",outcome="OWN_OUTCOME"\} 1/,
    );
  });

  it('its errors and a bad Request-Timeout are answered in the gateway’s shape', async () => {
    const fails = await api.gateway.app.inject({
      method: 'GET',
      url: '/own/fails',
      headers: { 'x-request-id': 'own-2' },
    });
    assert.equal(fails.statusCode, 409);
    assert.deepEqual(errorBodySchema.parse(fails.json()).error, {
      code: 'CONFLICT',
      message: 'the plugin refused',
      requestId: 'own-2',
    });
    const badTimeout = await api.gateway.app.inject({
      method: 'GET',
      url: '/own/ok',
      headers: { 'request-timeout': 'soon' },
    });
    assert.equal(badTimeout.statusCode, 400);
    assert.equal(errorBodySchema.parse(badTimeout.json()).error.code, 'VALIDATION');
    const text = await api.node.metrics.registry.metrics();
    assert.match(
      text,
      /chassis_http_server_duration_seconds_count\{method="GET",route="\/own\/fails",status="409",outcome="CONFLICT"\} 1/,
    );
  });
});
