import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { createInterface } from 'node:readline';
import { after, afterEach, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Database, sql } from '@chassis/data';
import { type DatabaseTarget, type TransportTarget, typescriptArgs, waitUntil } from '@chassis/testing';
import { inboxNames } from './service.ts';

/** JetStream's ack wait in the workers: a paused or killed instance's delivery goes to the other after it. */
const ACK_WAIT_MS = 2_000;
/** Generous: two node processes start on a loaded 2-core machine. */
const START_MS = 60_000;
/** How long a redelivery may take to reach the other instance: many ack waits, or a connection's end. */
const REDELIVERY_MS = 60_000;

/**
 * The inbox under a real duplicate delivery: two instances of one service (two processes, one database,
 * one service group) get the same event at once, and it has one effect. The node-level claim — the inbox
 * row inserted first thing in the handler's transaction — is what decides: the second delivery passes
 * the cheap "handled before?" look (the first has not committed), waits on the first's claim, and rolls
 * back when it commits. And a consumer killed mid-handler loses nothing: its delivery goes to the other
 * instance, which has the one effect.
 *
 * How the duplicate is made at once: on NATS, the instance holding the event is paused (SIGSTOP) past
 * the consumer's ack wait, so JetStream gives the delivery to the other instance (publishing twice would
 * not do: JetStream drops a second message with the same Nats-Msg-Id); on RabbitMQ, the same message,
 * same event id, is published twice, and prefetch 1 sends the second to the instance not holding the first.
 */
export function inboxRedeliverySuite(transport: TransportTarget, db: DatabaseTarget): void {
  const skip = transport.skip || db.skip;
  describe(`inbox under concurrent redelivery: ${transport.name}, ${db.name}`, { skip }, () => {
    const suffixes: string[] = [];
    let instances: Instance[] = [];
    let clients: { close(): Promise<void> }[] = [];
    afterEach(async () => {
      for (const instance of instances) instance.kill();
      await Promise.all(instances.map((instance) => instance.exited));
      await Promise.allSettled(clients.map((client) => client.close()));
      instances = [];
      clients = [];
    });
    after(async () => {
      await transport.cleanup?.(suffixes);
      await db.cleanup();
    });

    /** Two instances of one service on a new database, ready; the test's publisher and a database client. */
    async function twoInstances() {
      const suffix = randomBytes(4).toString('hex');
      suffixes.push(suffix);
      const url = await db.newDatabase();
      const env = { DATABASE_URL: url, TRANSPORT: transport.url, SUFFIX: suffix, ACK_WAIT_MS: String(ACK_WAIT_MS) };
      const pair = [new Instance(env), new Instance(env)] as const;
      instances.push(...pair);
      await Promise.all(pair.map((instance) => instance.waitFor('ready', START_MS)));
      const publisher = transport.newCluster()();
      clients.push(publisher);
      await publisher.connect();
      const database = await Database.open(url);
      clients.push(database);
      const names = inboxNames(suffix);
      const publish = (id: string) =>
        publisher.publish(names.event, {
          headers: { id, type: names.event },
          body: Buffer.from(JSON.stringify({ n: 1 })),
        });
      const effects = async (id: string) =>
        (
          await sql<{
            pid: number;
          }>`select pid from ${sql.id(names.service, 'effects')} where message_id = ${id}`.execute(database.kysely)
        ).rows.map((row) => row.pid);
      const claims = async (id: string) =>
        (
          await sql<{ n: number }>`select count(*)::int as n from ${sql.id(names.service, 'chassis_inbox')}
            where message_id = ${id}`.execute(database.kysely)
        ).rows[0]!.n;
      return { pair, publish, effects, claims };
    }

    /** The instance that printed `holding <id>` first, and the other. */
    async function holderOf(pair: readonly [Instance, Instance], id: string): Promise<[Instance, Instance]> {
      await waitUntil(() => pair.some((instance) => instance.saw(`holding ${id}`)), {
        what: `an instance to hold ${id}`,
        timeoutMs: REDELIVERY_MS,
        intervalMs: 20,
      });
      return pair[0].saw(`holding ${id}`) ? [pair[0], pair[1]] : [pair[1], pair[0]];
    }

    it(`[${transport.name}] the same event delivered to two instances at once has one effect`, async () => {
      const { pair, publish, effects, claims } = await twoInstances();
      const id = `evt-${randomUUID()}`;
      await publish(id);
      if (transport.name === 'amqp') await publish(id);
      const [first, second] = await holderOf(pair, id);
      // The first's effect is written and uncommitted; its delivery is still out.
      if (transport.name === 'nats') first.pause();
      await second.waitFor(`received ${id}`, REDELIVERY_MS);
      first.resume();
      for (const instance of pair) instance.release();
      await Promise.all(pair.map((instance) => instance.waitFor(`finished ${id}`, REDELIVERY_MS)));
      // Both ran the handler while the other's delivery was in flight: a real duplicate, at once.
      assert.ok(first.saw(`received ${id}`) && second.saw(`received ${id}`), 'both instances got the event');
      assert.deepEqual(await effects(id), [first.pid], 'one effect, the first claimant’s');
      assert.equal(await claims(id), 1, 'one inbox row');
      // A later delivery (the first's late ack refused, say) must not add one either.
      await sleep(ACK_WAIT_MS);
      assert.deepEqual(await effects(id), [first.pid]);
    });

    it(`[${transport.name}] an instance killed mid-handler loses nothing: the other handles the event once`, async () => {
      const { pair, publish, effects, claims } = await twoInstances();
      const id = `evt-${randomUUID()}`;
      await publish(id);
      const [killed, survivor] = await holderOf(pair, id);
      killed.kill();
      await killed.exited;
      survivor.release();
      await survivor.waitFor(`received ${id}`, REDELIVERY_MS);
      await survivor.waitFor(`finished ${id}`, REDELIVERY_MS);
      assert.deepEqual(await effects(id), [survivor.pid], 'the killed instance’s effect rolled back; one effect');
      assert.equal(await claims(id), 1, 'one inbox row');
    });
  });
}

/** A worker process (`worker.ts`) and the lines it printed. */
class Instance {
  private readonly proc: ChildProcess;
  private readonly lines: string[] = [];
  readonly exited: Promise<void>;
  private stopped = false;

  constructor(env: Record<string, string>) {
    this.proc = spawn(process.execPath, [...typescriptArgs(), new URL('./worker.ts', import.meta.url).pathname], {
      env: { ...process.env, ...env },
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    createInterface({ input: this.proc.stdout! }).on('line', (line) => this.lines.push(line));
    this.exited = new Promise((resolve) => this.proc.once('exit', () => resolve()));
  }

  get pid(): number {
    return this.proc.pid!;
  }

  saw(prefix: string): boolean {
    return this.lines.some((line) => line.startsWith(prefix));
  }

  async waitFor(prefix: string, timeoutMs: number): Promise<void> {
    await waitUntil(() => this.saw(prefix), {
      what: `worker ${this.pid} to print "${prefix}"`,
      timeoutMs,
      intervalMs: 20,
    });
  }

  /** SIGSTOP: it sends nothing, its progress acks included, until resumed. */
  pause(): void {
    this.stopped = true;
    this.proc.kill('SIGSTOP');
  }

  resume(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.proc.kill('SIGCONT');
  }

  release(): void {
    this.proc.stdin!.write('release\n');
  }

  kill(): void {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    this.proc.kill('SIGKILL');
  }
}
