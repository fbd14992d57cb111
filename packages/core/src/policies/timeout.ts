/**
 * Timeouts as deadlines: a call's absolute deadline is the first of its own timeout (call, then
 * contract, then node default: 5 s), an explicit deadline, and the deadline of the request being
 * handled. The remaining time — not a fresh timeout — travels on to the next call, so a chain of calls
 * can never outlive the request that started it.
 */
export interface DeadlineInputs {
  now: number;
  callTimeoutMs?: number | undefined;
  callDeadline?: number | undefined;
  contractTimeoutMs?: number | undefined;
  defaultTimeoutMs: number;
  /** The deadline of the request being handled, or +Infinity outside any. */
  inherited: number;
}

export function resolveDeadline(inputs: DeadlineInputs): number {
  const timeoutMs = inputs.callTimeoutMs ?? inputs.contractTimeoutMs ?? inputs.defaultTimeoutMs;
  return Math.min(inputs.now + timeoutMs, inputs.callDeadline ?? Number.POSITIVE_INFINITY, inputs.inherited);
}
