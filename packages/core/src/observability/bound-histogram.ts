import type { Histogram } from 'prom-client';

/** What prom-client 15 keeps for one label set of a histogram: its `hashMap` entry. */
interface Entry {
  labels: Record<string, string>;
  sum: number;
  count: number;
  bucketValues: Record<number, number>;
}

interface HistogramInternals {
  hashMap: Record<string, Entry>;
}

/**
 * One label set of a prom-client histogram, bound once: an observation adds to the histogram's own
 * entry for it directly. prom-client's `labels(...).observe` validates and hashes the label values on
 * every observation (about 1 µs, twice per call: a tenth of a local call); this costs a bucket search.
 *
 * It relies on how prom-client 15 stores a histogram (an entry per label set in `hashMap`, which
 * `reset` replaces), and the text the registry serves is what prom-client makes of those entries:
 * `test/observability/bound-histogram.test.ts` checks it against prom-client's own `observe`, so an upgrade that changes
 * the storage fails there.
 */
export class BoundHistogram {
  private map: Record<string, Entry> | undefined;
  private entry: Entry | undefined;
  /** Each bound's key in `bucketValues`, made once: a number key is turned into a string on every use. */
  private readonly keys: readonly string[];

  private readonly histogram: Histogram<string>;
  private readonly labels: Record<string, string>;
  private readonly upperBounds: readonly number[];

  constructor(histogram: Histogram<string>, labels: Record<string, string>, upperBounds: readonly number[]) {
    this.histogram = histogram;
    this.labels = labels;
    this.upperBounds = upperBounds;
    this.keys = upperBounds.map(String);
  }

  observe(value: number): void {
    const map = (this.histogram as unknown as HistogramInternals).hashMap;
    // A new map means the histogram was reset: bind to the entry it makes next.
    const entry = map === this.map && this.entry ? this.entry : this.bind(map);
    entry.sum += value;
    entry.count += 1;
    // As prom-client counts: the first bucket whose bound holds the value (none above the last, +Inf
    // being the count).
    const bounds = this.upperBounds;
    for (let i = 0; i < bounds.length; i++) {
      if (value <= bounds[i]!) {
        (entry.bucketValues as Record<string, number>)[this.keys[i]!]! += 1;
        return;
      }
    }
  }

  private bind(map: Record<string, Entry>): Entry {
    const find = () => Object.values(map).find((entry) => sameLabels(entry.labels, this.labels));
    let entry = find();
    if (!entry) {
      this.histogram.zero(this.labels);
      entry = find();
    }
    if (!entry) throw new Error('prom-client histogram has no entry for a label set it was zeroed for');
    this.map = map;
    this.entry = entry;
    return entry;
  }
}

function sameLabels(a: Record<string, string>, b: Record<string, string>): boolean {
  const keys = Object.keys(b);
  return Object.keys(a).length === keys.length && keys.every((key) => a[key] === b[key]);
}
