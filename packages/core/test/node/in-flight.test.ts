import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Roster, type Rostered, Tally } from '../../src/node/in-flight.ts';

class Entry implements Rostered<Entry> {
  previousInRoster: Entry | undefined = undefined;
  nextInRoster: Entry | undefined = undefined;
  readonly name: string;
  constructor(name: string) {
    this.name = name;
  }
}

const names = (roster: Roster<Entry>) => roster.entries().map((entry) => entry.name);

describe('work in flight (Roster, Tally)', () => {
  it('a roster lists what was added and not deleted, newest first, from any position', () => {
    const roster = new Roster<Entry>();
    const [a, b, c, d] = ['a', 'b', 'c', 'd'].map((name) => new Entry(name)) as [Entry, Entry, Entry, Entry];
    for (const entry of [a, b, c, d]) roster.add(entry);
    assert.deepEqual(names(roster), ['d', 'c', 'b', 'a']);
    assert.equal(roster.size, 4);
    roster.delete(c); // the middle
    roster.delete(d); // the head
    roster.delete(a); // the tail
    assert.deepEqual(names(roster), ['b']);
    assert.equal(roster.size, 1);
    roster.delete(b);
    assert.deepEqual(names(roster), []);
    assert.equal(roster.size, 0);
    // An entry taken out can come back.
    roster.add(c);
    roster.add(a);
    assert.deepEqual(names(roster), ['a', 'c']);
  });

  it('entries() is a copy: deleting while going through it skips nothing', () => {
    const roster = new Roster<Entry>();
    for (const name of ['a', 'b', 'c']) roster.add(new Entry(name));
    const seen: string[] = [];
    for (const entry of roster.entries()) {
      seen.push(entry.name);
      roster.delete(entry);
    }
    assert.deepEqual(seen, ['c', 'b', 'a']);
    assert.equal(roster.size, 0);
  });

  it('a tally settles at once when nothing is in flight, else when the last leaves', async () => {
    const tally = new Tally();
    await tally.settled();
    tally.enter();
    tally.enter();
    let settled = false;
    const waiting = tally.settled().then(() => {
      settled = true;
    });
    tally.leave();
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(settled, false, 'one is still in flight');
    assert.equal(tally.size, 1);
    tally.leave();
    await waiting;
    assert.equal(tally.size, 0);
    // And again, with a new waiter.
    tally.enter();
    const again = tally.settled();
    tally.leave();
    await again;
  });
});
