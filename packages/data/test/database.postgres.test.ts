import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { after, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { ChassisError } from '@chassis/core';
import { Database } from '@chassis/data';
import { postgresTarget, typescriptArgs } from '@chassis/testing';
import { foundationSuite } from './foundation/suite.ts';

const target = await postgresTarget();
foundationSuite(target);

describe('opening PostgreSQL: errors that say what to fix', { skip: target.skip }, () => {
  after(() => target.cleanup());

  /** The error of opening the test database's URL with `change` made to it. */
  async function openingFails(change: (url: URL) => void): Promise<ChassisError> {
    const url = new URL(await target.newDatabase());
    change(url);
    const error = await Database.open(url.toString()).then(
      () => assert.fail(`${url} opened`),
      (failure: unknown) => failure,
    );
    assert.ok(error instanceof ChassisError, String(error));
    return error;
  }

  it('[postgres] a process on PostgreSQL never loads PGlite (its code is imported only for pglite:// URLs)', async () => {
    // A process of its own, so that nothing this test file imported counts: every module it resolves is
    // seen by a resolve hook, and any of PGlite's is reported.
    const script = `
      import { registerHooks } from 'node:module';
      const pglite = [];
      registerHooks({
        resolve(specifier, context, next) {
          const resolved = next(specifier, context);
          if (resolved.url.includes('/@electric-sql/pglite/')) pglite.push(resolved.url);
          return resolved;
        },
      });
      const { Database } = await import('@chassis/data');
      const db = await Database.open(process.argv[1]);
      await db.transaction(async () => undefined);
      await db.close();
      console.log(JSON.stringify(pglite));
    `;
    const { stdout } = await promisify(execFile)(
      process.execPath,
      [...typescriptArgs(), '--input-type=module', '-e', script, await target.newDatabase()],
      { cwd: new URL('../../..', import.meta.url).pathname },
    );
    assert.deepEqual(JSON.parse(stdout.trim().split('\n').at(-1) ?? ''), []);
  });

  it('[postgres] a database that does not exist or a refused login is CONFIG, never worth retrying', async () => {
    const noDatabase = await openingFails((url) => {
      url.pathname = `/no_such_database_${randomBytes(3).toString('hex')}`;
    });
    assert.equal(noDatabase.code, 'CONFIG');
    assert.equal(noDatabase.retryable, false);
    assert.match(noDatabase.message, /"no_such_database_[0-9a-f]+" does not exist .* CREATE DATABASE/);

    const noRole = await openingFails((url) => {
      url.username = `no_such_role_${randomBytes(3).toString('hex')}`;
    });
    assert.equal(noRole.code, 'CONFIG');
    assert.match(noRole.message, /refused the login: .*no_such_role_.* Check the user and password/);
  });

  it('[postgres] a server that does not answer is UNAVAILABLE: it may come back, so a caller may retry', async () => {
    // Nothing listens on port 1.
    const down = await openingFails((url) => {
      url.port = '1';
    });
    assert.equal(down.code, 'UNAVAILABLE');
    assert.equal(down.retryable, true);
  });
});
