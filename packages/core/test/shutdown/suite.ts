import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createInterface } from 'node:readline';
import { after, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { ChassisError, type ChassisNode, createNode } from '@chassis/core';
import { type TransportTarget, typescriptArgs, waitUntil } from '@chassis/testing';
import { workerContracts, workerServices } from './services.ts';

/**
 * SIGTERM during 100 in-flight calls and queued events: every call answers or fails cleanly, and every
 * event is handled exactly once across the instance that drained and the one that remains.
 */
export function shutdownSuite(target: TransportTarget) {
  describe(`graceful shutdown on SIGTERM: ${target.name}`, { skip: target.skip, timeout: 90_000 }, () => {
    const nodes: ChassisNode[] = [];
    const transport = target.newCluster();
    let child: ChildProcess | undefined;
    const suffix = randomBytes(4).toString('hex');
    after(async () => {
      child?.kill('SIGKILL');
      await Promise.allSettled(nodes.map((node) => node.stop()));
      await target.cleanup?.([suffix]);
    });

    it(`[${target.name}] a draining process finishes its work; nothing is lost or handled twice`, async () => {
      const { work, jobQueued } = workerContracts(suffix);
      const handled = new Map<string, number>();
      const count = (id: string) => handled.set(id, (handled.get(id) ?? 0) + 1);

      child = spawn(process.execPath, [...typescriptArgs(), new URL('./worker.ts', import.meta.url).pathname], {
        env: { ...process.env, SUFFIX: suffix, CHASSIS_TRANSPORT: target.url, LOG_LEVEL: 'silent', OPS_PORT: 'off' },
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      let childHandled = 0;
      let ready = false;
      createInterface({ input: child.stdout! }).on('line', (line) => {
        if (line.startsWith('ready ')) ready = true;
        if (line.startsWith('handled ')) {
          childHandled++;
          count(line.slice('handled '.length));
        }
      });
      const exited = new Promise<number | null>((resolve) => child!.once('exit', (code) => resolve(code)));
      await waitUntil(() => ready, { what: 'the worker process to start', timeoutMs: 30_000 });

      const remaining = createNode({
        services: workerServices(suffix, count, () => sleep(100)),
        transport: transport(),
        logLevel: 'silent',
      });
      nodes.push(remaining);
      await remaining.start();
      const producer = createNode({ services: [], transport: transport(), logLevel: 'silent' });
      nodes.push(producer);
      await producer.start();

      const jobs = Array.from({ length: 200 }, (_, i) => `job-${i}`);
      for (const id of jobs) await producer.emit(jobQueued, { id });
      const calls = Array.from({ length: 100 }, (_, n) =>
        producer.call(work, { n }, { timeoutMs: 20_000, retry: false }),
      );
      await waitUntil(() => childHandled >= 10, { what: 'the worker to be busy' });
      child.kill('SIGTERM');

      const results = await Promise.allSettled(calls);
      const failures = results.flatMap((r) => (r.status === 'rejected' ? [r.reason as unknown] : []));
      for (const failure of failures) assert.ok(failure instanceof ChassisError, `a clean, typed failure: ${failure}`);
      assert.deepEqual(
        failures.map((f) => (f as ChassisError).code),
        [],
        'draining, the worker answered every call it had taken',
      );
      assert.equal(await exited, 0, 'the worker drained and exited 0');
      await waitUntil(() => jobs.every((id) => handled.has(id)), { what: 'all 200 jobs handled', timeoutMs: 30_000 });
      await sleep(500);
      const twice = [...handled].filter(([, times]) => times > 1).map(([id]) => id);
      assert.deepEqual(twice, [], 'no job handled twice');
      assert.ok(childHandled > 0 && childHandled < 200, `both instances took part (worker handled ${childHandled})`);
    });
  });
}
