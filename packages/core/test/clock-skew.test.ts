import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createInterface } from 'node:readline';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { ChassisError, type ChassisNode, createNode, defineService, handle } from '@chassis/core';
import type { Consumer, Transport, WireMessage } from '@chassis/core/transport';
import { amqpTarget, natsTarget, servers, skipUnlessUp, typescriptArgs, waitUntil } from '@chassis/testing';
import { natsTransport } from '../src/transports/nats/index.ts';
import { skewContracts } from './clock-skew/services.ts';

/**
 * Clock skew between nodes must not move deadlines. A request carries the time its caller still waits
 * (`timeout-ms`), which the receiver counts on its own clock from arrival. Here the receiving node runs
 * in a child process whose wall clock is 30 s ahead of or behind the caller's: calls with a normal timeout
 * succeed, and one that really runs past its timeout still times out on the receiver's side.
 */
const TARGETS = [await natsTarget(), await amqpTarget()];
const SHIFTS = [
  { shiftMs: 30_000, label: '30 s ahead' },
  { shiftMs: -30_000, label: '30 s behind' },
];

for (const target of TARGETS) {
  for (const { shiftMs, label } of SHIFTS) {
    describe(`clock skew: ${target.name}, receiver's clock ${label}`, { skip: target.skip, timeout: 120_000 }, () => {
      const suffix = randomBytes(4).toString('hex');
      const contracts = skewContracts(suffix);
      const outcomes = new Map<string, string>();
      let child: ChildProcess | undefined;
      let caller: ChassisNode | undefined;

      before(async () => {
        const here = (path: string) => new URL(path, import.meta.url).pathname;
        child = spawn(
          process.execPath,
          [...typescriptArgs(), '--import', here('./clock-skew/shift-clock.ts'), here('./clock-skew/receiver.ts')],
          {
            env: {
              ...process.env,
              SUFFIX: suffix,
              CLOCK_SHIFT_MS: String(shiftMs),
              CHASSIS_TRANSPORT: target.url,
              LOG_LEVEL: 'silent',
              OPS_PORT: 'off',
            },
            stdio: ['ignore', 'pipe', 'inherit'],
          },
        );
        let ready = false;
        createInterface({ input: child.stdout! }).on('line', (line) => {
          const [word, id] = line.split(' ');
          if (word === 'ready') ready = true;
          else if (id !== undefined) outcomes.set(id, word!);
        });
        await waitUntil(() => ready || child!.exitCode !== null, {
          what: 'the skewed receiver to start',
          timeoutMs: 60_000,
        });
        assert.ok(ready, `the skewed receiver exited with ${child.exitCode} before it was ready`);
        caller = createNode({ services: [], transport: target.newCluster()(), logLevel: 'silent' });
        await caller.start();
      });

      after(async () => {
        child?.kill('SIGKILL');
        await caller?.stop();
        await target.cleanup?.([suffix]);
      });

      it(`[${target.name}] calls with a normal timeout succeed against a receiver ${label}, which counts the caller's timeout on its own clock`, async () => {
        for (let i = 0; i < 5; i++) {
          const sentAt = Date.now();
          const seen = await caller!.call(contracts.clock, {}, { timeoutMs: 5000, retry: false });
          // The harness really skews the receiver (within 5 s of the shift, whatever the machine's load).
          assert.ok(
            Math.abs(seen.now - sentAt - shiftMs) < 5000,
            `the receiver's clock is ${seen.now - sentAt} ms off ours; expected about ${shiftMs}`,
          );
          assert.ok(
            seen.remainingMs > 0 && seen.remainingMs <= 5000,
            `the receiver saw ${seen.remainingMs} ms left of a 5000 ms call`,
          );
        }
      });

      it(`[${target.name}] a call that runs past its timeout times out on a receiver ${label} too: its handler's signal aborts`, async () => {
        const id = `slow-${randomBytes(3).toString('hex')}`;
        const error = await caller!.call(contracts.slow, { id, ms: 20_000 }, { timeoutMs: 1000, retry: false }).then(
          () => assert.fail('a 20 s call with a 1 s timeout must time out'),
          (e: unknown) => e,
        );
        assert.ok(error instanceof ChassisError && error.code === 'TIMEOUT', `expected TIMEOUT, got ${String(error)}`);
        // The receiver must have run it (not refused it as late) and aborted it at its deadline, well before
        // the handler's 20 s sleep would have ended.
        await waitUntil(() => outcomes.has(id), { what: `the receiver to end ${id}`, timeoutMs: 30_000 });
        assert.equal(outcomes.get(id), 'aborted');
      });
    });
  }
}

/**
 * Core NATS stores nothing, so requests beyond a node's concurrency wait in the node: their `timeout-ms`
 * counts from when they reached it, and when it drains it hands back those it had not started with the
 * time they waited there taken off, since the next instance counts `timeout-ms` from its own receipt.
 */
describe('clock skew: a request waiting in a NATS node', { skip: await skipUnlessUp('nats'), timeout: 60_000 }, () => {
  const transports: Transport[] = [];
  const nodes: ChassisNode[] = [];
  after(async () => {
    await Promise.allSettled(nodes.map((node) => node.stop()));
    await Promise.allSettled(transports.map((transport) => transport.close()));
  });
  const connected = async () => {
    const transport = natsTransport({ url: servers.nats.url });
    transports.push(transport);
    await transport.connect();
    return transport;
  };
  const request = (id: string, timeoutMs: number): WireMessage => ({
    headers: { id, 'timeout-ms': String(timeoutMs) },
    body: new TextEncoder().encode('{}'),
  });

  it('[nats] a request that waits in the node for a free slot counts its timeout-ms from its arrival', async () => {
    const suffix = randomBytes(4).toString('hex');
    const { clock } = skewContracts(suffix);
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const remaining = new Map<number, number>();
    let calls = 0;
    const server = createNode({
      services: [
        defineService({
          name: `skew-${suffix}`,
          actions: [
            handle(clock, async (_input, ctx) => {
              const n = ++calls;
              remaining.set(n, ctx.remainingMs());
              if (n === 1) await gate;
              return { now: Date.now(), remainingMs: ctx.remainingMs() };
            }),
          ],
        }),
      ],
      transport: natsTransport({ url: servers.nats.url }),
      concurrency: 1,
      logLevel: 'silent',
    });
    const caller = createNode({
      services: [],
      transport: natsTransport({ url: servers.nats.url }),
      logLevel: 'silent',
    });
    nodes.push(server, caller);
    await server.start();
    await caller.start();
    const first = caller.call(clock, {}, { timeoutMs: 30_000, retry: false });
    await waitUntil(() => calls === 1, { what: 'the only slot to be taken' });
    const second = caller.call(clock, {}, { timeoutMs: 20_000, retry: false });
    await sleep(1500);
    release();
    await Promise.all([first, second]);
    // It waited about 1.5 s for the slot; that wait comes off the 20 s it was given.
    const left = remaining.get(2);
    assert.ok(left !== undefined && left <= 20_000 - 1000, `the second call started with ${left} ms left of 20000`);
  });

  it('[nats] goes on with the time it waited taken off its timeout-ms, or not at all when none is left', async () => {
    const service = `skew-handback-${randomBytes(4).toString('hex')}`;
    const [first, second, caller] = [await connected(), await connected(), await connected()];
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const firstSaw: string[] = [];
    const consumer: Consumer = await first.serve(
      service,
      async ({ message }) => {
        firstSaw.push(message.headers.id!);
        await gate;
        return { headers: {}, body: new TextEncoder().encode('{}') };
      },
      { concurrency: 1 },
    );
    const blocking = caller.request(service, 'work', request('r1', 30_000), { timeoutMs: 30_000 });
    await waitUntil(() => firstSaw.length === 1, { what: 'the first instance to be busy' });
    // Both wait behind r1 in the first instance; r3's caller gives up while it waits.
    const handedBack = caller.request(service, 'work', request('r2', 20_000), { timeoutMs: 20_000 });
    const expired = caller.request(service, 'work', request('r3', 500), { timeoutMs: 500 }).catch((e: unknown) => e);
    await sleep(1500);

    const secondSaw = new Map<string, number>();
    await second.serve(
      service,
      async ({ message }) => {
        secondSaw.set(message.headers.id!, Number(message.headers['timeout-ms']));
        return { headers: {}, body: new TextEncoder().encode('{}') };
      },
      { concurrency: 10 },
    );
    const stopping = consumer.stop();
    await handedBack;
    release();
    await Promise.all([stopping, blocking]);

    const left = secondSaw.get('r2');
    assert.ok(left !== undefined && left > 0 && left <= 20_000 - 1000, `r2 went on with timeout-ms ${left}`);
    assert.ok((await expired) instanceof ChassisError);
    assert.equal(secondSaw.has('r3'), false, 'a request nobody waits for any more is not handed on');
    assert.deepEqual(firstSaw, ['r1']);
  });
});
