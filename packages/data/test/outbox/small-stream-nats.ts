import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, reachable, skipUnlessInstalled, waitUntil } from '@chassis/testing';
import { jetstreamManager, RetentionPolicy, StorageType } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';

/** The stream the NATS transport stores events in, by default. */
const EVENTS_STREAM = 'CHASSIS_EVENTS';

/** For `describe`'s `skip`: why the test-owned server cannot run (a failure under CHASSIS_REQUIRE_INFRA=1). */
export const natsServerMissing = skipUnlessInstalled('nats-server', 'Debian: apt-get install nats-server');

/**
 * A nats-server of the test's own — on a free port, with its own store — whose events stream refuses
 * messages larger than `maxMsgSize`: a broker that takes most events and refuses one for good, as an
 * operator's size limit does. The shared server is left alone (other tests use its streams).
 */
export async function smallStreamNats(maxMsgSize: number) {
  const port = await freePort();
  const store = await mkdtemp(join(tmpdir(), 'chassis-outbox-nats-'));
  const child = spawn('nats-server', ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', store], { stdio: 'ignore' });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const url = `nats://127.0.0.1:${port}`;
  const server = { name: 'the test-owned nats-server', url, port };
  await waitUntil(() => reachable(server, 200), { timeoutMs: 20_000, what: 'the test-owned nats-server' });
  const nc = await connect({ servers: url });
  const jsm = await jetstreamManager(nc);
  // Created before the transport connects: it keeps an existing stream's size limits.
  await jsm.streams.add({
    name: EVENTS_STREAM,
    subjects: ['evt.>'],
    storage: StorageType.File,
    retention: RetentionPolicy.Limits,
    max_msg_size: maxMsgSize,
  });
  return {
    url,
    /** The message ids the stream holds, in the order it took them. */
    async ids(): Promise<string[]> {
      const info = await jsm.streams.info(EVENTS_STREAM);
      const ids: string[] = [];
      for (let seq = info.state.first_seq; seq <= info.state.last_seq && info.state.messages > 0; seq++) {
        const message = await jsm.streams.getMessage(EVENTS_STREAM, { seq });
        ids.push(message?.header.get('id') ?? '?');
      }
      return ids;
    },
    /** The operator's fix: the stream takes messages up to `bytes` from now on. */
    async raiseLimit(bytes: number): Promise<void> {
      const { config } = await jsm.streams.info(EVENTS_STREAM);
      await jsm.streams.update(EVENTS_STREAM, { ...config, max_msg_size: bytes });
    },
    async stop(): Promise<void> {
      await nc.close().catch(() => undefined);
      child.kill('SIGTERM');
      await exited;
      await rm(store, { recursive: true, force: true });
    },
  };
}
