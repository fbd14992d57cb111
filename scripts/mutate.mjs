#!/usr/bin/env node
// Mutation testing (StrykerJS) of the modules that carry guarantees: breaks their code one small change
// at a time and runs the tests that should notice. Slow, so not in CI; run it before and after changing
// one of these modules.
//
//   npm run mutate                      every module, smallest first
//   npm run mutate -- node sagas        the named modules
//   npm run mutate -- --survivors fees  also list each surviving mutant (file:line, mutator, change)
//   npm run mutate -- --summary         only the table at the end, not Stryker's progress
//   npm run mutate -- --list            the modules, their source and their tests
//   npm run mutate -- --report          the table (and with --survivors, the list) again from the last
//                                       reports, without running anything: separate runs in one table
//
// MUTATE_CONCURRENCY (default 2) is how many test processes run at once; the tests use the real
// PostgreSQL and NATS, so keep it low on a busy machine. Reports go to reports/mutation/<module>.{html,json}.
import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { Stryker } from '@stryker-mutator/core';
import { moduleOrder, mutationModules } from './mutation-modules.mjs';

const root = new URL('..', import.meta.url).pathname;
const args = process.argv.slice(2);
const flags = new Set(args.filter((arg) => arg.startsWith('--')));
const named = args.filter((arg) => !arg.startsWith('--'));
const known = new Set(['--survivors', '--summary', '--list', '--report']);
for (const flag of flags) {
  if (!known.has(flag)) fail(`Unknown option ${flag} (known: ${[...known].join(', ')})`);
}
for (const name of named) {
  if (!(name in mutationModules)) fail(`Unknown module ${name} (known: ${moduleOrder.join(', ')})`);
}
const modules = named.length > 0 ? named : moduleOrder;

function fail(message) {
  console.error(message);
  process.exit(2);
}

/** Expands `dir/*part*.test.ts`-style patterns (a `*` within the last segment only), sorted. */
function expand(patterns) {
  const files = new Set();
  for (const pattern of patterns) {
    const dir = dirname(pattern);
    const last = pattern.slice(dir.length + 1);
    const regex = new RegExp(`^${last.split('*').map(escapeRegex).join('.*')}$`);
    let names = [];
    try {
      names = readdirSync(join(root, dir));
    } catch {
      continue;
    }
    for (const name of names) {
      // PGlite's one connection serialises everything, so the PostgreSQL file of a suite is the one that
      // can notice a broken lock or race; a wildcard leaves the PGlite twin out (name it to include it).
      if (last.includes('*') && name.endsWith('.pglite.test.ts')) continue;
      if (regex.test(name)) files.add(`${dir}/${name}`);
    }
  }
  return [...files].sort();
}

/** `file:from-to` line ranges (Stryker's syntax) for a module's sections, found by their opening code. */
function sections(list = []) {
  return list.map(({ file, from, to }) => {
    const lines = readFileSync(join(root, file), 'utf8').split('\n');
    const start = lines.findIndex((line) => line.includes(from));
    const end = lines.findIndex((line, i) => i > start && line.includes(to));
    if (start < 0 || end < 0)
      fail(`${file}: no section from "${from}" to "${to}"; update scripts/mutation-modules.mjs`);
    return `${file}:${start + 1}-${end}`;
  });
}

function escapeRegex(text) {
  return text.replace(/[.+?^${}()|[\]\\]/g, '\\$&');
}

if (flags.has('--list')) {
  for (const name of moduleOrder) {
    const m = mutationModules[name];
    const mutate = [...expand(m.mutate ?? []), ...sections(m.sections)];
    console.log(`${name}: ${m.description}\n  mutate: ${mutate.join(' ')}\n  tests:  ${expand(m.tests).join(' ')}`);
  }
  process.exit(0);
}

// The test processes Stryker starts inherit this environment. TSX_TSCONFIG_PATH makes @chassis/* resolve
// inside Stryker's sandbox (where the mutated copies are); through node_modules they would reach the originals.
process.env.TSX_TSCONFIG_PATH = 'tsconfig.stryker.json';
process.env.LOG_LEVEL ??= 'silent';
process.env.NODE_ENV ??= 'test';

const concurrency = Number(process.env.MUTATE_CONCURRENCY ?? Math.min(2, availableParallelism()));
const reportDir = join(root, 'reports', 'mutation');
mkdirSync(reportDir, { recursive: true });

const rows = [];
const survivors = [];
const started = Date.now();

/** One mutant as the table and the survivors list need it, from Stryker's result (the report's 1-based positions). */
function fromStryker(r) {
  const { line, column } = r.location.start;
  return {
    status: r.status,
    file: r.fileName,
    line,
    column,
    mutator: r.mutatorName,
    replacement: r.replacement,
  };
}

/** Adds a module's row and its survivors. */
function record(name, results, { minutes, load }) {
  const count = (status) => results.filter((r) => r.status === status).length;
  const row = {
    name,
    killed: count('Killed'),
    timeout: count('Timeout'),
    survived: count('Survived'),
    noCoverage: count('NoCoverage'),
    ignored: count('Ignored'),
    errors: count('RuntimeError') + count('CompileError'),
    minutes,
    load,
  };
  const detected = row.killed + row.timeout;
  const valid = detected + row.survived + row.noCoverage;
  row.score = valid === 0 ? Number.NaN : (100 * detected) / valid;
  rows.push(row);
  for (const r of results) {
    if (r.status !== 'Survived' && r.status !== 'NoCoverage') continue;
    survivors.push({
      module: name,
      where: `${relative(root, join(root, r.file))}:${r.line}:${r.column}`,
      status: r.status,
      mutator: r.mutator,
      replacement: (r.replacement ?? '').replace(/\s+/g, ' ').slice(0, 100),
    });
  }
}

if (flags.has('--report')) {
  // Stryker's JSON report (mutation-testing-report-schema): files → mutants, 1-based columns.
  for (const name of modules) {
    let report;
    try {
      report = JSON.parse(readFileSync(join(reportDir, `${name}.json`), 'utf8'));
    } catch {
      if (named.length > 0) console.error(`No report of ${name} yet: run npm run mutate -- ${name}`);
      continue;
    }
    const results = Object.entries(report.files).flatMap(([file, { mutants }]) =>
      mutants.map((m) => ({
        status: m.status,
        file,
        line: m.location.start.line,
        column: m.location.start.column,
        mutator: m.mutatorName,
        replacement: m.replacement,
      })),
    );
    record(name, results, { minutes: Number.NaN, load: Number.NaN });
  }
}

for (const name of flags.has('--report') ? [] : modules) {
  const m = mutationModules[name];
  const mutate = [...expand(m.mutate ?? []), ...sections(m.sections)];
  const tests = expand(m.tests);
  if (tests.length === 0 || mutate.length === 0) fail(`Module ${name} has no source or no tests`);
  console.log(`\n== ${name}: ${m.description}\n   mutate ${mutate.join(' ')}\n   tests  ${tests.join(' ')}`);
  const moduleStarted = Date.now();
  const load = loadavg()[0];
  // The module's own environment, for the test processes Stryker starts (they inherit this one's).
  const saved = Object.fromEntries(Object.keys(m.env ?? {}).map((key) => [key, process.env[key]]));
  Object.assign(process.env, m.env ?? {});
  const restoreEnv = () => {
    for (const [key, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[key];
      else process.env[key] = value;
    }
  };
  const stryker = new Stryker({
    mutate,
    testRunner: 'tap',
    tap: {
      testFiles: tests,
      // Each test file runs on its own, not under `--test` (whose child process Stryker's hook would not see).
      nodeArgs: ['-r', '{{hookFile}}', '--import', 'tsx', '--test-reporter=tap', '{{testFile}}'],
      forceBail: true,
    },
    coverageAnalysis: 'perTest',
    plugins: ['@stryker-mutator/tap-runner', join(root, 'scripts', 'stryker-ignorers.mjs')],
    ignorers: ['chassis-equivalent'],
    concurrency,
    // The tests wait on real servers on a shared machine: a slow run is not a mutant that hangs.
    timeoutMS: 60_000,
    timeoutFactor: 3,
    dryRunTimeoutMinutes: 30,
    tempDirName: '.stryker-tmp',
    cleanTempDir: true,
    ignorePatterns: ['reports', 'bench/results', '.data', '.scratch*', 'coverage', 'dist', '*.log'],
    reporters: flags.has('--summary') ? ['html', 'json'] : ['progress-append-only', 'html', 'json'],
    htmlReporter: { fileName: relative(root, join(reportDir, `${name}.html`)) },
    jsonReporter: { fileName: relative(root, join(reportDir, `${name}.json`)) },
    logLevel: flags.has('--summary') ? 'warn' : 'info',
    fileLogLevel: 'off',
    allowConsoleColors: false,
  });
  let results;
  try {
    results = await stryker.runMutationTest();
  } catch (error) {
    restoreEnv();
    console.error(`Module ${name} could not be run: ${error?.message ?? error}`);
    rows.push({ name, error: true, minutes: (Date.now() - moduleStarted) / 60_000, load });
    continue;
  }
  restoreEnv();
  record(name, results.map(fromStryker), { minutes: (Date.now() - moduleStarted) / 60_000, load });
}

if (flags.has('--survivors')) {
  console.log('\nSurviving and uncovered mutants (file:line:column  status  mutator  →  replacement)');
  for (const s of survivors) {
    console.log(
      `${s.module.padEnd(12)} ${s.where.padEnd(58)} ${s.status.padEnd(10)} ${s.mutator.padEnd(22)} → ${s.replacement}`,
    );
  }
}

const fixed = (n) => (Number.isNaN(n) ? '-' : n.toFixed(1));
const header = ['module', 'killed', 'timeout', 'survived', 'no cov', 'ignored', 'errors', 'score', 'minutes', 'load'];
const table = rows.map((r) =>
  r.error
    ? [r.name, '-', '-', '-', '-', '-', '-', 'failed', fixed(r.minutes), fixed(r.load)]
    : [
        r.name,
        r.killed,
        r.timeout,
        r.survived,
        r.noCoverage,
        r.ignored,
        r.errors,
        Number.isNaN(r.score) ? 'n/a' : `${r.score.toFixed(1)}%`,
        fixed(r.minutes),
        fixed(r.load),
      ].map(String),
);
const widths = header.map((h, i) => Math.max(h.length, ...table.map((row) => row[i].length)));
const line = (cells) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
console.log(`\nMutation score per module (score = (killed + timeout) / (killed + timeout + survived + no cov))`);
console.log(line(header));
for (const row of table) console.log(line(row));
console.log(
  `total ${((Date.now() - started) / 60_000).toFixed(1)} min, concurrency ${concurrency}; reports in ${relative(root, reportDir)}/`,
);
process.exit(rows.some((r) => r.error) ? 1 : 0);
