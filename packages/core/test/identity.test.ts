import assert from 'node:assert/strict';
import { afterEach, describe, it, mock } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  action,
  type ChassisError,
  type ChassisNode,
  createNode,
  defineService,
  handle,
  identityFrom,
  jwtVerifier,
  loadConfig,
  MemoryBroker,
  memoryTransport,
  requireRole,
  signToken,
  systemToken,
} from '@chassis/core';
import { decodeJwt, exportJWK, generateKeyPair, SignJWT } from 'jose';
import { z } from 'zod';

const SECRET = 'a-development-secret-of-32-chars!';

const whoAmI = action('accounts.whoAmI', {
  input: z.object({}),
  output: z.object({ subject: z.string().nullable(), roles: z.array(z.string()), via: z.string().nullable() }),
  idempotent: true,
});
const listAccounts = action('accounts.listAccounts', {
  input: z.object({}),
  output: z.object({ subject: z.string().nullable(), roles: z.array(z.string()), via: z.string().nullable() }),
  idempotent: true,
});

function unauthenticated(pattern: RegExp) {
  return (error: ChassisError) => {
    assert.equal(error.code, 'UNAUTHENTICATED');
    assert.equal(error.status, 401);
    assert.match(error.message, pattern);
    return true;
  };
}

describe('identity: JWT verification', () => {
  it('HS256: a valid token gives subject, roles and claims; expired, forged and malformed ones are refused', async () => {
    const verify = jwtVerifier({ secret: SECRET });
    const token = await signToken(SECRET, { sub: 'alice', roles: ['customer'], accounts: ['101'] });
    const alice = await verify(token);
    assert.equal(alice.subject, 'alice');
    assert.deepEqual(alice.roles, ['customer']);
    assert.deepEqual(alice.claims.accounts, ['101']);

    const expired = await signToken(SECRET, { sub: 'alice' }, { expiresInSeconds: -60 });
    await assert.rejects(verify(expired), unauthenticated(/expired/));
    const forged = await signToken('another-secret-of-at-least-32-chars', { sub: 'alice', roles: ['admin'] });
    await assert.rejects(verify(forged), unauthenticated(/signature/));
    await assert.rejects(verify('not.a.token'), unauthenticated(/malformed|not valid/));
    const anonymous = await new SignJWT({ roles: ['admin'] })
      .setProtectedHeader({ alg: 'HS256' })
      .setExpirationTime('1h')
      .sign(new TextEncoder().encode(SECRET));
    await assert.rejects(verify(anonymous), unauthenticated(/no subject/));
  });

  it('a verified token is believed until it expires, not after', async () => {
    const verify = jwtVerifier({ secret: SECRET, clockToleranceSeconds: 0 });
    // Expiry counts in whole seconds from the signing second: 2 s leaves at least one for the two
    // verifications on a loaded machine (1 s could have been 1 ms), and the wait runs to the token's exp.
    const token = await signToken(SECRET, { sub: 'alice' }, { expiresInSeconds: 2 });
    assert.equal((await verify(token)).subject, 'alice');
    assert.equal((await verify(token)).subject, 'alice', 'again, from what the first verification found');
    await sleep(decodeJwt(token).exp! * 1000 - Date.now() + 100);
    await assert.rejects(verify(token), unauthenticated(/expired/));
  });

  it('issuer and audience are checked when configured', async () => {
    const verify = jwtVerifier({ secret: SECRET, issuer: 'simplebank', audience: 'api' });
    assert.equal(
      (await verify(await signToken(SECRET, { sub: 'bob' }, { issuer: 'simplebank', audience: 'api' }))).subject,
      'bob',
    );
    await assert.rejects(
      verify(await signToken(SECRET, { sub: 'bob' }, { issuer: 'elsewhere', audience: 'api' })),
      unauthenticated(/iss/),
    );
  });

  it('RS256 with a JWKS: tokens signed by the private key pass; an HS256 token is refused', async () => {
    const { publicKey, privateKey } = await generateKeyPair('RS256');
    const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' };
    const verify = jwtVerifier({ jwks: { keys: [jwk] } });
    const token = await new SignJWT({ sub: 'admin', roles: ['admin'] })
      .setProtectedHeader({ alg: 'RS256', kid: 'k1' })
      .setExpirationTime('5m')
      .sign(privateKey);
    assert.deepEqual((await verify(token)).roles, ['admin']);
    await assert.rejects(
      verify(await signToken(SECRET, { sub: 'admin', roles: ['admin'] })),
      unauthenticated(/algorithm|key/),
    );
  });

  it('a short secret is a CONFIG error; the environment picks the verifier', async () => {
    assert.throws(() => jwtVerifier({ secret: 'short' }), /at least 32 characters/);
    assert.equal(identityFrom(loadConfig({})).identity, undefined);
    const { identity } = identityFrom(loadConfig({ CHASSIS_JWT_SECRET: SECRET }));
    assert.equal((await identity!(await signToken(SECRET, { sub: 'carol' }))).subject, 'carol');
    assert.throws(() => loadConfig({ CHASSIS_JWT_SECRET: 'short' }), /CHASSIS_JWT_SECRET="short": must be at least 32/);
  });

  it('requireRole: 401 without an identity, 403 without the role', async () => {
    assert.throws(() => requireRole(undefined, 'admin'), { code: 'UNAUTHENTICATED' });
    const bob = await jwtVerifier({ secret: SECRET })(await signToken(SECRET, { sub: 'bob', roles: ['customer'] }));
    assert.throws(() => requireRole(bob, 'admin'), { code: 'FORBIDDEN', status: 403 });
    assert.equal(requireRole(bob, 'admin', 'customer').subject, 'bob');
  });

  it('systemToken: the service’s own token, role system, signed again only near its expiry', async (t) => {
    t.after(() => mock.timers.reset());
    mock.timers.enable({ apis: ['Date'], now: Date.now() });
    const ownToken = systemToken(SECRET, 'shop-orders');
    const first = await ownToken();
    const caller = await jwtVerifier({ secret: SECRET })(first);
    assert.equal(caller.subject, 'shop-orders');
    assert.deepEqual(caller.roles, ['system']);
    assert.equal(decodeJwt(first).exp! - decodeJwt(first).iat!, 600);
    mock.timers.tick(499_000);
    assert.equal(await ownToken(), first, 'the same token while it has long to live');
    mock.timers.tick(2_000);
    const renewed = await ownToken();
    assert.notEqual(renewed, first, 'a new one 100 s before the first expires');
    assert.equal((await jwtVerifier({ secret: SECRET })(renewed)).subject, 'shop-orders');
  });
});

describe('identity: services verify the token in the envelope', () => {
  const nodes: ChassisNode[] = [];
  afterEach(async () => {
    await Promise.allSettled(nodes.splice(0).map((node) => node.stop()));
  });

  it('ctx.user is the verified caller, the token travels on, and a bad token never reaches the handler', async () => {
    const broker = new MemoryBroker();
    let runs = 0;
    const accounts = defineService({
      name: 'accounts',
      uses: [listAccounts],
      actions: [
        handle(whoAmI, async (_input, ctx) => {
          runs++;
          // The next service sees the same caller: the token, not a claim of this one, travels on.
          const downstream = await ctx.call(listAccounts, {});
          return { subject: ctx.user?.subject ?? null, roles: [...(ctx.user?.roles ?? [])], via: downstream.subject };
        }),
        handle(listAccounts, (_input, ctx) => ({
          subject: ctx.user?.subject ?? null,
          roles: [...(ctx.user?.roles ?? [])],
          via: null,
        })),
      ],
    });
    const node = createNode({
      services: [accounts],
      transport: memoryTransport({ broker }),
      logLevel: 'silent',
      identity: jwtVerifier({ secret: SECRET }),
    });
    nodes.push(node);
    await node.start();

    const token = await signToken(SECRET, { sub: 'alice', roles: ['customer'] });
    assert.deepEqual(await node.call(whoAmI, {}, { auth: token }), {
      subject: 'alice',
      roles: ['customer'],
      via: 'alice',
    });
    assert.deepEqual(await node.call(whoAmI, {}), { subject: null, roles: [], via: null }, 'no token, no user');

    const before = runs;
    const forged = await signToken('another-secret-of-at-least-32-chars', { sub: 'alice', roles: ['admin'] });
    await assert.rejects(node.call(whoAmI, {}, { auth: forged }), unauthenticated(/signature/));
    await assert.rejects(node.call(whoAmI, {}, { auth: 'garbage' }), unauthenticated(/not valid/));
    assert.equal(runs, before, 'the handler never ran for a bad token');
  });
});
