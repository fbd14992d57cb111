import type { WireMessage } from '@chassis/core';

/** A row the relay publishes: read from the outbox, or handed over by the process that committed it. */
export interface ReadyRow {
  id: number;
  event: string;
  headers: Record<string, string>;
  body: Uint8Array;
  attempts: number;
}

/**
 * PGlite's hand-over: the rows this process committed to the outbox without NOTIFY, given to the leading
 * relay with their ids so that it publishes them without reading them back (see `OutboxRelay.handOver`).
 * It takes them only while they follow the rows its batches have read with no gap between: ids a
 * rolled-back insert took, rows another writer announced, a failed publish, a full batch — anything
 * unusual sends it reading the outbox instead.
 */
export class HandedOverRows {
  private readonly batchSize: number;
  /** Rows handed over since the last batch. */
  private handed: ReadyRow[] = [];
  /** The next batch reads the outbox whatever was handed over: a poll, a notification or a nudge asked. */
  private mustLook = true;
  /**
   * Every row up to this id was read by a batch of this relay (and published, parked, or failed — a
   * failure clears this); undefined while not known. Handed-over rows that follow it without a gap are all
   * that waits.
   */
  private readThrough: number | undefined;

  constructor(batchSize: number) {
    this.batchSize = batchSize;
  }

  /** Rows this process just committed, for the leader's next batch. */
  add(rows: readonly { id: number; event: string; message: WireMessage }[]): void {
    for (const { id, event, message } of rows) {
      this.handed.push({ id, event, headers: { ...message.headers }, body: message.body, attempts: 0 });
    }
  }

  /** The next batch reads the outbox, whatever was handed over. */
  lookNext(): void {
    this.mustLook = true;
  }

  /** Not leading: what was handed over is read by whoever publishes it, and what was read is not known. */
  forget(): void {
    this.handed = [];
    this.readThrough = undefined;
  }

  /** The handed-over rows the leader's batch publishes instead of reading the outbox, or undefined when it must read. */
  take(): ReadyRow[] | undefined {
    const rows = this.handed;
    this.handed = [];
    const after = this.readThrough;
    if (this.mustLook || after === undefined || rows.length === 0) {
      this.mustLook = false;
      return undefined;
    }
    // Read already by a batch that looked: those went with it.
    const fresh = rows.filter((row) => row.id > after).sort((a, b) => a.id - b.id);
    if (fresh.length > this.batchSize) return undefined;
    for (const [i, row] of fresh.entries()) if (row.id !== after + 1 + i) return undefined;
    return fresh;
  }

  /** A batch took up `rows`, read from the outbox or `handed` over. */
  taken(rows: readonly ReadyRow[], handed: boolean): void {
    // A full batch read leaves rows unread; any batch may end before its last row (see `leftUnsent`).
    if (!handed && rows.length === this.batchSize) this.readThrough = undefined;
    else if (rows.length > 0) this.readThrough = Math.max(this.readThrough ?? 0, Number(rows.at(-1)!.id));
  }

  /** A batch left rows unsent: the next one reads the outbox. */
  leftUnsent(): void {
    this.readThrough = undefined;
  }
}
