import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Database, sql } from '@chassis/data';

// PGlite's shared memory is resident from its start (zero-filled WebAssembly memory): the embedded bank's
// memory goal (issue 12) counts on PostgreSQL's buffers being 8 MB, not PGlite's 128.
test('a PGlite database runs PostgreSQL with 8 MB of shared buffers', async () => {
  const db = await Database.open('pglite://memory');
  try {
    const { rows } = await sql<{ shared_buffers: string }>`show shared_buffers`.execute(db.kysely);
    assert.deepEqual(rows, [{ shared_buffers: '8MB' }]);
  } finally {
    await db.close();
  }
});
