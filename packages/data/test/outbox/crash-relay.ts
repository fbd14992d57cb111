import { writeSync } from 'node:fs';
import { Database, OutboxRelay } from '@chassis/data';

/**
 * A relay in a process of its own that dies (SIGKILL) right after publishing its `expected`-th row, before
 * its batch can mark anything sent: a crash at the worst moment. Each publish is a JSON line on stdout,
 * written synchronously so it is out before the kill.
 *
 * Usage: node crash-relay.ts <database url> <service> <expected>
 */
const [url, service, expected] = process.argv.slice(2);
if (!url || !service || !expected) throw new Error('usage: crash-relay.ts <database url> <service> <expected>');

const db = await Database.open(url);
let published = 0;
const relay = new OutboxRelay(
  db,
  service,
  async (event, message) => {
    writeSync(1, `${JSON.stringify({ event, id: message.headers.id })}\n`);
    if (++published === Number(expected)) process.kill(process.pid, 'SIGKILL');
  },
  { pollIntervalMs: 100 },
);
await relay.start();
