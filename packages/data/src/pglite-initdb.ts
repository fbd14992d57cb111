import { PGlite } from '@electric-sql/pglite';

/**
 * A child process that creates a PGlite database (initdb) in the folder it is given, one without a
 * database yet, and exits. See `initdbElsewhere` in database.ts for why a process of its own.
 *
 * argv: <folder>; env CHASSIS_PGLITE_START_PARAMS: PGlite's startParams, as JSON
 */
const startParams = JSON.parse(process.env.CHASSIS_PGLITE_START_PARAMS ?? '[]') as string[];
const lite = await PGlite.create({ dataDir: process.argv[2], startParams });
await lite.close();
