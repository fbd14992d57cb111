import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Database, sql } from '@chassis/data';

// PGlite's shared memory is resident from its start (zero-filled WebAssembly memory): the embedded bank's
// memory goal (issue 12) counts on PostgreSQL's buffers being 8 MB, not PGlite's 128, and on its shared
// memory being sized for a few backends rather than 100.
test('a PGlite database runs PostgreSQL with 8 MB of shared buffers, sized for 4 connections', async () => {
  const db = await Database.open('pglite://memory');
  try {
    const { rows } = await sql<{
      shared_buffers: string;
      max_connections: string;
    }>`select current_setting('shared_buffers') as shared_buffers, current_setting('max_connections') as max_connections`.execute(
      db.kysely,
    );
    assert.deepEqual(rows, [{ shared_buffers: '8MB', max_connections: '4' }]);
  } finally {
    await db.close();
  }
});

test('a PGlite transaction can still lock hundreds of relations (a large migration)', async () => {
  const db = await Database.open('pglite://memory');
  try {
    await db.transaction(async (trx) => {
      for (let i = 0; i < 300; i++) await sql.raw(`create table t${i} (id int primary key)`).execute(trx);
    });
    const { rows } = await sql<{
      n: number;
    }>`select count(*)::int as n from pg_tables where tablename ~ '^t[0-9]+$'`.execute(db.kysely);
    assert.deepEqual(rows, [{ n: 300 }]);
  } finally {
    await db.close();
  }
});
