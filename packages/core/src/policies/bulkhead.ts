import { BulkheadRejectedError, bulkhead, type BulkheadPolicy as CockatielBulkhead } from 'cockatiel';
import { ChassisError } from '../errors.ts';

/**
 * A bulkhead per target or per handler (cockatiel underneath): at most `maxConcurrent` at once, up to
 * `maxQueued` waiting; beyond that, `BULKHEAD_FULL` at once, so one slow dependency cannot take every
 * socket, worker or byte of memory with it.
 */
export interface BulkheadPolicy {
  maxConcurrent: number;
  maxQueued: number;
}

export class Bulkhead {
  private readonly policy: CockatielBulkhead;

  constructor(
    readonly target: string,
    readonly settings: BulkheadPolicy,
  ) {
    this.policy = bulkhead(settings.maxConcurrent, settings.maxQueued);
  }

  /** Work running now. */
  get inFlight(): number {
    return this.settings.maxConcurrent - this.policy.executionSlots;
  }

  get queued(): number {
    return this.settings.maxQueued - this.policy.queueSlots;
  }

  async execute<T>(run: () => Promise<T>): Promise<T> {
    try {
      return await this.policy.execute(run);
    } catch (error) {
      if (error instanceof BulkheadRejectedError) {
        throw new ChassisError(
          'BULKHEAD_FULL',
          `${this.target} is at capacity: ${this.settings.maxConcurrent} running and ${this.settings.maxQueued} waiting`,
          { data: { target: this.target, ...this.settings } },
        );
      }
      throw error;
    }
  }
}
