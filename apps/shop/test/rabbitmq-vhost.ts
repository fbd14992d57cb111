import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { promisify } from 'node:util';

const run = promisify(execFile);

/**
 * A RabbitMQ virtual host of this run's own: every queue and exchange the run declares lives in it and
 * goes with it, so nothing meets another run's (or SimpleBank's) queues, and nothing is left behind.
 */
export async function temporaryVhost(baseUrl: string): Promise<{ url: string; remove(): Promise<void> }> {
  const name = `shop-test-${randomUUID().slice(0, 8)}`;
  const user = decodeURIComponent(new URL(baseUrl).username || 'guest');
  await run('rabbitmqctl', ['add_vhost', name]);
  await run('rabbitmqctl', ['set_permissions', '-p', name, user, '.*', '.*', '.*']);
  const url = new URL(baseUrl);
  url.pathname = `/${encodeURIComponent(name)}`;
  return {
    url: url.toString(),
    remove: async () => {
      await run('rabbitmqctl', ['delete_vhost', name]);
    },
  };
}
