/**
 * PGlite's own `query` (the unnamed statement, parsed and planned every time, five calls into its
 * WebAssembly) against the data kit's prepared path (pglite-prepared.ts: Bind, Execute and Sync in
 * one call), on SimpleBank-like statements: a select and an update by key, an insert of three values.
 *
 *   node bench/src/pglite-statements.ts [memory|nodefs] [relaxed]
 *
 * Both paths are warmed up first: V8 runs PGlite's WebAssembly on its baseline compiler at first and
 * tiers hot functions up in the background, which would otherwise favour whichever runs second. Then
 * five rounds, alternating which path goes first; the medians are printed.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { PglitePreparedStatements } from '../../packages/data/src/pglite-prepared.ts';

const N = Number(process.env.N ?? 2000);
const mode = process.argv[2] === 'nodefs' ? 'nodefs' : 'memory';
const relaxedDurability = process.argv[3] === 'relaxed';
const dir = mode === 'nodefs' ? mkdtempSync(join(tmpdir(), 'pglite-statements-')) : undefined;
const lite = dir ? await PGlite.create(dir, { relaxedDurability }) : await PGlite.create();
await lite.exec(`
  create table accounts (id text primary key, owner text not null, balance bigint not null,
    updated_at timestamptz not null default now());
  create table outbox (id bigserial primary key, topic text not null, payload jsonb not null,
    created_at timestamptz not null default now());
`);
for (let i = 0; i < 100; i++) {
  await lite.query('insert into accounts (id, owner, balance) values ($1, $2, $3)', [`a${i}`, `o${i}`, 1000]);
}

const statements: [string, (i: number) => unknown[]][] = [
  ['select id, owner, balance, updated_at from accounts where id = $1', (i) => [`a${i % 100}`]],
  ['update accounts set balance = balance + $2, updated_at = now() where id = $1', (i) => [`a${i % 100}`, 1]],
  [
    'insert into outbox (topic, payload, created_at) values ($1, $2, $3)',
    (i) => ['orders.placed', JSON.stringify({ i, amount: 10 }), new Date()],
  ],
];
const prepared = new PglitePreparedStatements(lite, 256);
const paths: Record<string, (text: string, parameters: unknown[]) => Promise<unknown>> = {
  query: (text, parameters) => lite.query(text, parameters),
  prepared: (text, parameters) => prepared.query(text, parameters),
};

for (let round = 0; round < 4; round++) {
  for (const run of Object.values(paths)) {
    for (const [text, parameters] of statements) for (let i = 0; i < 1000; i++) await run(text, parameters(i));
  }
}

const figures = new Map<string, { rate: number[]; cpu: number[] }>();
for (let round = 0; round < 5; round++) {
  for (const path of round % 2 ? ['prepared', 'query'] : ['query', 'prepared']) {
    for (const [text, parameters] of statements) {
      const run = paths[path] as (typeof paths)[string];
      const cpu0 = process.cpuUsage();
      const t0 = performance.now();
      for (let i = 0; i < N; i++) await run(text, parameters(i));
      const seconds = (performance.now() - t0) / 1000;
      const cpu = process.cpuUsage(cpu0);
      const key = `${path}\t${text.split(' ')[0]}`;
      const entry = figures.get(key) ?? { rate: [], cpu: [] };
      entry.rate.push(N / seconds);
      entry.cpu.push((cpu.user + cpu.system) / N);
      figures.set(key, entry);
    }
  }
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[values.length >> 1] as number;
const label = `${mode}${relaxedDurability ? '+relaxed' : ''}`;
for (const [key, { rate, cpu }] of figures) {
  console.log(`${label}\t${key}\t${Math.round(median(rate))} statements/s\t${median(cpu).toFixed(1)} µs CPU/statement`);
}
await lite.close();
if (dir) rmSync(dir, { recursive: true, force: true });
