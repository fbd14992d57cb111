import { newId } from '../envelope.ts';
import { outcomeOf } from '../observability/metrics.ts';
import { noSpan, SpanKind, Tracing } from '../observability/tracing.ts';
import type { ScheduleDefinition, ServiceDefinition } from '../service.ts';
import type { Origin } from './origin.ts';
import { runInContext } from './run-handler.ts';
import type { NodeRuntime } from './runtime.ts';

/**
 * The node's scheduled work (`every`): one timer per schedule, re-armed when its run ends, so the runs of
 * one schedule never overlap on this node. A `cluster` schedule runs only where its lease is held.
 */
export class Schedules {
  /** Set by `start`: the runtime whose services' schedules run. */
  #rt!: NodeRuntime;
  readonly #timers = new Set<NodeJS.Timeout>();
  readonly #running = new Set<Promise<void>>();
  #stopped = false;

  start(rt: NodeRuntime): void {
    this.#rt = rt;
    for (const service of this.#rt.services) {
      if (service.schedules.length === 0) continue;
      const leased = service.schedules.some((schedule) => schedule.options.scope !== 'instance');
      if (leased && !this.#rt.extensions.some((extension) => extension.lease !== undefined)) {
        this.#rt.log.warn(
          { service: service.name },
          `no extension of this node keeps leases, so every instance of ${service.name} runs its cluster schedules`,
        );
      }
      for (const schedule of service.schedules) this.#arm(service, schedule, schedule.everyMs);
    }
  }

  /** No run starts after this; resolves when the runs in flight have ended. */
  async stop(): Promise<void> {
    this.#stopped = true;
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
    await Promise.allSettled([...this.#running]);
  }

  #arm(service: ServiceDefinition, schedule: ScheduleDefinition, delayMs: number): void {
    if (this.#stopped) return;
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      const started = Date.now();
      const run = this.#tick(service, schedule).finally(() => {
        this.#running.delete(run);
        this.#arm(service, schedule, Math.max(0, started + schedule.everyMs - Date.now()));
      });
      this.#running.add(run);
    }, delayMs);
    // Scheduled work alone does not keep a process alive.
    timer.unref();
    this.#timers.add(timer);
  }

  async #tick(service: ServiceDefinition, schedule: ScheduleDefinition): Promise<void> {
    const rt = this.#rt;
    const timeoutMs = schedule.options.timeoutMs ?? Math.max(1000, schedule.everyMs);
    if (schedule.options.scope !== 'instance' && !(await this.#holdsLease(service, schedule, timeoutMs))) return;
    const name = `${service.name}.${schedule.name}`;
    const started = performance.now();
    const span =
      rt.tracing.unrecorded(noSpan) ??
      rt.tracing.record(`schedule ${name}`, SpanKind.INTERNAL, noSpan, {
        'chassis.service': service.name,
        'chassis.schedule': schedule.name,
      });
    const messageId = newId();
    const origin: Origin = {
      messageId,
      correlationId: messageId,
      deadline: Date.now() + timeoutMs,
      auth: undefined,
      trace: span,
      inherited: true,
    };
    let failure: unknown;
    try {
      await runInContext(rt, { kind: 'schedule', service }, origin, 1, span, true, (ctx) => schedule.run(ctx));
    } catch (error) {
      failure = error;
      rt.log.warn(
        { err: error, service: service.name, schedule: schedule.name },
        `scheduled ${name} failed; it runs again in ${schedule.everyMs} ms`,
      );
    } finally {
      rt.metrics.schedule.observe(
        { service: service.name, schedule: schedule.name, outcome: outcomeOf(failure) },
        (performance.now() - started) / 1000,
      );
      Tracing.end(span, failure);
    }
  }

  /**
   * Whether this node holds the schedule's lease, taken or kept for the interval and a run's time, so
   * that it lapses once its holder stops ticking. No extension keeping leases: every instance holds it.
   */
  async #holdsLease(service: ServiceDefinition, schedule: ScheduleDefinition, timeoutMs: number): Promise<boolean> {
    const rt = this.#rt;
    for (const extension of rt.extensions) {
      let held: Promise<boolean> | undefined;
      try {
        held = extension.lease?.(service, schedule.name, rt.id, schedule.everyMs + timeoutMs);
        if (held === undefined) continue;
        return await held;
      } catch (error) {
        rt.log.warn(
          { err: error, service: service.name, schedule: schedule.name },
          `could not take the lease of ${service.name}.${schedule.name}; this run is skipped`,
        );
        return false;
      }
    }
    return true;
  }
}
