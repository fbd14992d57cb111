import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { skipUnlessInstalled } from '@chassis/testing';

const run = promisify(execFile);
const ops = fileURLToPath(new URL('../ops/', import.meta.url));

it('the alert rules are valid; MessagesAccumulating fires on a one-minute average backlog above 100, OutboxEventsParked while a service has a parked outbox event (promtool)', {
  skip: skipUnlessInstalled('promtool', 'Debian: apt-get install prometheus'),
}, async () => {
  const checked = await run('promtool', ['check', 'rules', 'rules.yml'], { cwd: ops });
  assert.match(checked.stdout, /SUCCESS: 2 rules found/);
  const tested = await run('promtool', ['test', 'rules', 'rules.test.yml'], { cwd: ops });
  assert.match(tested.stdout, /SUCCESS/);
});
