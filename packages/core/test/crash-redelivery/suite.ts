import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { createInterface } from 'node:readline';
import { after, afterEach, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Transport } from '@chassis/core/transport';
import { type TransportTarget, typescriptArgs, waitUntil } from '@chassis/testing';
import { crashNames } from './service.ts';

/** JetStream's ack wait in the worker: a killed worker's delivery comes back after it. */
const ACK_WAIT_MS = 1_000;
/** Generous: a node process starts on a loaded 2-core machine. */
const START_MS = 60_000;
const MAX_DELIVERIES = 3;

/**
 * A handler that kills its own process on every delivery never reports a failure, so only the broker's
 * count of deliveries can end the loop: the event must reach the dead-letter queue after `maxDeliveries`
 * deliveries, each to a fresh process the test starts when the last one died, and no more.
 */
export function crashRedeliverySuite(transport: TransportTarget): void {
  describe(`crash redelivery: ${transport.name}`, { skip: transport.skip }, () => {
    const suffixes: string[] = [];
    let workers: Worker[] = [];
    let clients: Transport[] = [];
    afterEach(async () => {
      for (const worker of workers) worker.kill();
      await Promise.all(workers.map((worker) => worker.exited));
      await Promise.allSettled(clients.map((client) => client.close()));
      workers = [];
      clients = [];
    });
    after(() => transport.cleanup?.(suffixes));

    /** Attempts 1…`retries` fail with a retryable error, the next ones kill the worker. */
    const crashLoop = async (retries: number) => {
      const suffix = randomBytes(4).toString('hex');
      suffixes.push(suffix);
      const names = crashNames(suffix);
      const env = {
        TRANSPORT: transport.url,
        SUFFIX: suffix,
        MAX_DELIVERIES: String(MAX_DELIVERIES),
        RETRIES: String(retries),
        ACK_WAIT_MS: String(ACK_WAIT_MS),
      };
      const start = async () => {
        const worker = new Worker(env);
        workers.push(worker);
        // A restarted one may get the event, and die, before it says it is ready.
        await worker.waitFor('ready', START_MS, true);
        return worker;
      };
      // Declares the subscription before the event is published.
      let worker = await start();
      const client = transport.newCluster()();
      clients.push(client);
      await client.connect();
      const id = `evt-${randomUUID()}`;
      await client.publish(names.event, {
        headers: { id, type: names.event, 'content-type': 'application/json' },
        body: Buffer.from(JSON.stringify({ n: 1 })),
      });

      const attempts: number[] = [];
      while ((await client.readDeadLetters(names.subscription)).length === 0) {
        if (worker.alive) {
          await sleep(100);
          continue;
        }
        attempts.push(...worker.received(id));
        assert.ok(
          attempts.length <= retries + MAX_DELIVERIES,
          `delivered at attempts ${attempts.join(', ')}: too many`,
        );
        worker = await start();
      }
      // The last worker dead-lettered the event without running the handler, and lives on.
      await sleep(ACK_WAIT_MS * 2);
      assert.deepEqual(worker.received(id), [], 'the dead-lettering delivery did not run the handler');
      assert.equal(worker.alive, true);
      const letters = await client.readDeadLetters(names.subscription);
      assert.equal(letters.length, 1);
      assert.equal(letters[0]!.message.headers.id, id);
      assert.match(letters[0]!.reason, /delivered 3 times without an outcome/);
      return attempts;
    };

    it(`[${transport.name}] an event whose handler kills its process is dead-lettered after maxDeliveries`, async () => {
      assert.deepEqual(await crashLoop(0), [1, 2, 3], 'each crash counted as an attempt');
    });

    it(`[${transport.name}] retries the runtime asked for do not count as lost deliveries`, async () => {
      // Attempts 1 and 2 are retried (a dependency outage), 3, 4 and 5 crash: only those three count.
      assert.deepEqual(await crashLoop(2), [1, 2, 3, 4, 5]);
    });
  });
}

/** A worker process (`worker.ts`) and the lines it printed. */
class Worker {
  private readonly proc: ChildProcess;
  private readonly lines: string[] = [];
  readonly exited: Promise<void>;

  constructor(env: Record<string, string>) {
    this.proc = spawn(process.execPath, [...typescriptArgs(), new URL('./worker.ts', import.meta.url).pathname], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    createInterface({ input: this.proc.stdout! }).on('line', (line) => this.lines.push(line));
    this.exited = new Promise((resolve) => this.proc.once('exit', () => resolve()));
  }

  get alive(): boolean {
    return this.proc.exitCode === null && this.proc.signalCode === null;
  }

  /** The attempts it was handed the event at. */
  received(id: string): number[] {
    return this.lines.filter((line) => line.startsWith(`received ${id} `)).map((line) => Number(line.split(' ')[2]));
  }

  async waitFor(prefix: string, timeoutMs: number, orExit = false): Promise<void> {
    await waitUntil(() => this.lines.some((line) => line.startsWith(prefix)) || (orExit && !this.alive), {
      what: `worker ${this.proc.pid} to print "${prefix}"`,
      timeoutMs,
      intervalMs: 20,
    });
  }

  kill(): void {
    if (this.alive) this.proc.kill('SIGKILL');
  }
}
