import { type CheckResult, type HealthCheck, type HealthReport, runChecks } from '../observability/health.ts';
import type { NodeRuntime } from './runtime.ts';

const pass: CheckResult = { status: 'pass' };

/** Alive unless stopped: a failing liveness probe means "restart me". */
export function liveness(rt: NodeRuntime): Promise<HealthReport> {
  return runChecks(`chassis node ${rt.id}`, {
    'node:process': () => (rt.state === 'stopped' ? { status: 'fail', output: 'the node has stopped' } : pass),
  });
}

/**
 * Ready to take work: running (not starting or draining), the transport connected, and every declared
 * check passing. An open circuit breaker makes it `warn`: the node works, a dependency does not.
 */
export function readiness(rt: NodeRuntime): Promise<HealthReport> {
  const checks: Record<string, HealthCheck> = {
    'node:state': () =>
      rt.state === 'running' ? pass : { status: 'fail', output: `the node is ${rt.state}`, observedValue: rt.state },
    'transport:connection': () =>
      rt.transportStatus === 'connected'
        ? { status: 'pass', observedValue: rt.transport.kind }
        : { status: 'fail', output: `${rt.transport.kind} transport is ${rt.transportStatus}` },
    'circuit-breakers': () => {
      const open = rt.policies.breakerStates().filter((b) => b.state !== 'closed');
      return open.length === 0
        ? pass
        : { status: 'warn', output: `open: ${open.map((b) => b.target).join(', ')}`, observedValue: open };
    },
    ...rt.options.checks,
  };
  for (const extension of rt.extensions) Object.assign(checks, extension.checks?.());
  for (const service of rt.services) {
    for (const [name, check] of Object.entries(service.health)) checks[`${service.name}:${name}`] = check;
  }
  return runChecks(`chassis node ${rt.id}`, checks);
}
