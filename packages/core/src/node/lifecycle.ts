import { hostname } from 'node:os';
import { OpenFeature } from '@openfeature/server-sdk';
import { ChassisError } from '../errors.ts';
import { EnvironmentFlagProvider } from '../observability/flags.ts';
import { startOpsServer } from '../observability/health.ts';
import { Tracing } from '../observability/tracing.ts';
import type { NodeInfo } from '../registry.ts';
import type { ServiceDefinition, ServiceHandle } from '../service.ts';
import { callFromOutside } from './calls.ts';
import { consume } from './events.ts';
import { liveness, readiness } from './health.ts';
import type { ChassisNode } from './node.ts';
import { opsTable, runOps, serveOps } from './ops.ts';
import { serveRequest } from './requests.ts';
import type { NodeRuntime } from './runtime.ts';

export type NodeState = 'idle' | 'starting' | 'running' | 'draining' | 'stopped';

/** What this node runs, as its heartbeats tell it. */
export function nodeInfo(rt: NodeRuntime): NodeInfo {
  const status = rt.state === 'stopped' ? 'left' : rt.state === 'draining' ? 'draining' : 'up';
  return {
    nodeId: rt.id,
    host: hostname(),
    pid: process.pid,
    transport: rt.transport.kind,
    startedAt: rt.startedAt,
    status,
    services: rt.services.map((service) => ({
      name: service.name,
      version: service.version,
      actions: [...service.actions.values()].map((handler) => handler.contract.name),
      events: service.events.map((handler) => handler.contract.name),
    })),
  };
}

/**
 * Starts: the ops port, tracing, flags, the transport, the extensions, the services' start hooks, then
 * their actions served, their events consumed and their schedules armed, then heartbeats; then the
 * extensions' `started`. A failure on the way (before `started`) undoes it all.
 */
export async function startNode(rt: NodeRuntime, node: ChassisNode): Promise<void> {
  if (rt.state !== 'idle') throw new Error(`The node is ${rt.state}; a node starts once`);
  rt.state = 'starting';
  const startedExtensions: NodeRuntime['extensions'][number][] = [];
  try {
    // The ops port answers first, so a probe sees "starting" rather than a refused connection.
    const ops = opsTable(rt, node);
    rt.ops = ops;
    if (rt.options.opsPort !== undefined) {
      rt.opsServer = await startOpsServer(
        rt.options.opsPort,
        {
          live: () => liveness(rt),
          ready: () => readiness(rt),
          metrics: () => rt.metrics.text(),
          ops: {
            actions: () => [...ops].map(([name, action]) => ({ name, action })),
            run: (name, input, credentials) => runOps(rt, ops, name, input, credentials),
          },
        },
        rt.options.opsHost,
      );
    }
    rt.tracing = await Tracing.create({
      ...rt.options.tracing,
      nodeId: rt.id,
      defaultServiceName: rt.services.map((s) => s.name).join(',') || 'chassis',
    });
    await OpenFeature.setProviderAndWait(rt.id, rt.options.flags ?? new EnvironmentFlagProvider());
    await rt.transport.connect();
    rt.opsConsumer = await serveOps(rt, ops);
    for (const extension of rt.extensions) {
      startedExtensions.push(extension);
      await extension.start?.(node);
    }
    for (const service of rt.services) await service.start?.(handleOf(rt, service));
    for (const service of rt.services) {
      if (service.actions.size > 0) {
        rt.consumers.push(
          await rt.transport.serve(service.name, (request) => serveRequest(rt, service, request), {
            concurrency: rt.settings.concurrency,
          }),
        );
      }
      for (const handler of service.events) {
        rt.consumers.push(
          await rt.transport.subscribe(
            { event: handler.contract.name, service: service.name, handler: handler.name },
            (delivery) => consume(rt, service, handler, delivery),
            { prefetch: handler.options.prefetch ?? rt.settings.prefetch },
          ),
        );
      }
    }
    rt.schedules.start(rt);
    await rt.registry.start();
    rt.state = 'running';
    rt.log.info(
      { services: rt.services.map((s) => s.name), transport: rt.transport.kind, opsPort: rt.opsServer?.port },
      `node started: ${rt.services.map((s) => s.name).join(', ') || 'no services'} on ${rt.transport.kind}`,
    );
    for (const extension of rt.extensions) {
      try {
        await extension.started?.(node);
      } catch (error) {
        rt.log.error({ err: error, extension: extension.name }, `extension ${extension.name} failed once started`);
      }
    }
  } catch (error) {
    rt.state = 'stopped';
    // What the extensions opened (a database pool) would otherwise keep the process alive.
    for (const extension of startedExtensions.reverse()) {
      await Promise.resolve()
        .then(() => extension.stop?.(node))
        .catch(() => undefined);
    }
    await rt.schedules.stop();
    await Promise.allSettled(rt.consumers.splice(0).map((consumer) => consumer.stop()));
    await rt.opsConsumer?.stop().catch(() => undefined);
    await rt.transport.close().catch(() => undefined);
    await rt.opsServer?.close();
    throw error;
  }
}

/**
 * Drains: not ready → stop taking messages (and the extensions their own work: `draining`) → finish the
 * ones in flight (up to the drain timeout, after which their handlers are aborted and the broker
 * redelivers them elsewhere) → stop hooks → close.
 */
export async function stopNode(rt: NodeRuntime, node: ChassisNode): Promise<void> {
  if (rt.state !== 'running' && rt.state !== 'starting') return;
  rt.state = 'draining';
  rt.log.info('node draining');
  const stopped = Promise.allSettled([
    ...rt.consumers.splice(0).map((consumer) => consumer.stop()),
    rt.localCalls.settled(),
    rt.schedules.stop(),
    ...rt.extensions.map((extension) => Promise.resolve().then(() => extension.draining?.(node))),
  ]);
  let timer: NodeJS.Timeout | undefined;
  const timedOut = await Promise.race([
    stopped.then(() => false),
    new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(true), rt.settings.drainTimeoutMs);
    }),
  ]);
  clearTimeout(timer);
  if (timedOut) {
    rt.log.warn(
      { inFlight: rt.inFlight.size },
      `drain timed out after ${rt.settings.drainTimeoutMs} ms; aborting work in flight`,
    );
    const reason = new ChassisError('UNAVAILABLE', 'The node is shutting down');
    for (const ctx of rt.inFlight.entries()) ctx.abort(reason);
  }
  for (const service of [...rt.services].reverse()) {
    try {
      await service.stop?.(handleOf(rt, service));
    } catch (error) {
      rt.log.error({ err: error, service: service.name }, 'stop hook failed');
    }
  }
  for (const extension of [...rt.extensions].reverse()) {
    try {
      await extension.stop?.(node);
    } catch (error) {
      rt.log.error({ err: error, extension: extension.name }, `extension ${extension.name} failed to stop`);
    }
  }
  rt.state = 'stopped';
  // The ops API answers while the node drains, so an operator can watch it; it goes with the transport.
  await rt.opsConsumer?.stop().catch(() => undefined);
  await rt.registry.stop().catch(() => undefined);
  await rt.transport.close();
  await rt.tracing.shutdown().catch((error) => rt.log.warn({ err: error }, 'spans could not be flushed'));
  await rt.opsServer?.close();
  rt.log.info('node stopped');
}

/** What a service's start and stop hooks get of the node. */
function handleOf(rt: NodeRuntime, service: ServiceDefinition): ServiceHandle {
  return {
    name: service.name,
    nodeId: rt.id,
    log: rt.log.child({ service: service.name }),
    call: (contract, input) => callFromOutside(rt, contract, input, {}),
    breaker: (target, settings) => rt.policies.breaker(target, settings),
  };
}
