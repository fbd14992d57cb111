#!/usr/bin/env node
// Runs every *.test.ts under packages/, apps/ and bench/ with node's test runner, one file at a time:
// infrastructure tests restart real servers, and two files doing that at once would collide. Node runs
// the TypeScript itself (type stripping, Node 22.18+); nothing compiles it first.
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

// Run outside npm (`node scripts/test.mjs`), this is the machine's Node, which may be older than the
// dependencies allow; through npm it is the Node 24 that npm install put in node_modules/.bin.
const [major, minor] = process.versions.node.split('.').map(Number);
if (major < 22 || (major === 22 && minor < 18)) {
  console.error(
    `RUNTIME_TOO_OLD: the tests need Node 22.18 or newer (it runs TypeScript itself) and this is ${process.version} (${process.execPath}); ` +
      'run them with npm test or npm run test:only, which use the Node 24 that npm install brings, or install Node 22.18+.',
  );
  process.exit(1);
}

const root = new URL('..', import.meta.url).pathname;
const filters = process.argv.slice(2);

function find(dir, out = []) {
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules' || name.startsWith('.')) continue;
    const path = join(dir, name);
    if (statSync(path).isDirectory()) find(path, out);
    else if (name.endsWith('.test.ts')) out.push(relative(root, path));
  }
  return out;
}

const files = ['packages', 'apps', 'bench']
  .flatMap((dir) => {
    try {
      return find(join(root, dir));
    } catch {
      return [];
    }
  })
  .filter((file) => filters.length === 0 || filters.some((f) => file.includes(f)))
  .sort();

if (files.length === 0) {
  console.error(`No test files match ${filters.join(' ')}`);
  process.exit(1);
}

const env = { ...process.env, LOG_LEVEL: process.env.LOG_LEVEL ?? 'silent', NODE_ENV: process.env.NODE_ENV ?? 'test' };
const result = spawnSync(
  process.execPath,
  ['--test', '--test-concurrency=1', '--test-reporter=spec', '--test-timeout=300000', ...files],
  { cwd: root, env, stdio: 'inherit' },
);
process.exit(result.status ?? 1);
