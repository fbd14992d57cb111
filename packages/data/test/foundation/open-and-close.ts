// Opens the database at argv[2], queries it only if argv[3] is 'query', closes it, and says when it
// closed: the test measures how long the process lives after that.
import { Database, sql } from '@chassis/data';

const db = await Database.open(process.argv[2] ?? 'pglite://memory');
if (process.argv[3] === 'query') await sql`select 1`.execute(db.kysely);
await db.close();
process.stdout.write('closed\n');
