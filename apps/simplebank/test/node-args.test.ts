import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  SIMPLEBANK_COMPILE_CACHE_ENV,
  SIMPLEBANK_EMBEDDED_NODE_ARGS,
  SIMPLEBANK_MALLOC_ENV,
  SIMPLEBANK_NODE_ARGS,
  simplebankAllocatorEnv,
} from '../src/launcher.ts';

// `npm start` cannot import the launcher's flags, so its script repeats them: this keeps the two alike.
test('npm start runs the embedded bank with its Node.js flags (SIMPLEBANK_EMBEDDED_NODE_ARGS)', () => {
  for (const file of ['../../../package.json', '../package.json']) {
    const { scripts } = JSON.parse(readFileSync(new URL(file, import.meta.url), 'utf8')) as {
      scripts: Record<string, string>;
    };
    const start = scripts.start!.split(' ');
    for (const flag of SIMPLEBANK_EMBEDDED_NODE_ARGS) assert.ok(start.includes(flag), `${file}'s start lacks ${flag}`);
  }
});

const SETTINGS = fileURLToPath(new URL('../src/process-settings.ts', import.meta.url));

/** What a process that calls `withProcessSettings` first runs with: its malloc environment and Node flags. */
function settingsSeenBy(env: Record<string, string | undefined>): {
  env: Record<string, string>;
  compileCache: string | undefined;
  preload: string | undefined;
  mallocConf: string | undefined;
  execArgv: string[];
} {
  const script = `import { withProcessSettings } from ${JSON.stringify(SETTINGS)};
withProcessSettings();
const env = Object.fromEntries(Object.keys(${JSON.stringify(SIMPLEBANK_MALLOC_ENV)}).map((name) => [name, process.env[name]]));
console.log(JSON.stringify({ env, compileCache: process.env.NODE_COMPILE_CACHE, preload: process.env.LD_PRELOAD, mallocConf: process.env.MALLOC_CONF, execArgv: process.execArgv }));`;
  const withoutMalloc = Object.fromEntries(
    Object.entries(process.env).filter(
      ([name]) =>
        !name.startsWith('MALLOC_') &&
        !['NODE_COMPILE_CACHE', 'CHASSIS_TRANSPORT', 'LD_PRELOAD', 'MALLOC_CONF'].includes(name),
    ),
  );
  const output = execFileSync(process.execPath, ['--input-type=module', '-e', script], {
    env: { ...withoutMalloc, ...env },
    encoding: 'utf8',
  });
  return JSON.parse(output);
}

test('main.ts starts itself again with the malloc settings and Node.js flags it lacks (Linux)', {
  skip: process.platform !== 'linux',
}, () => {
  const seen = settingsSeenBy({});
  assert.deepEqual(seen.env, SIMPLEBANK_MALLOC_ENV);
  assert.equal(seen.compileCache, SIMPLEBANK_COMPILE_CACHE_ENV.NODE_COMPILE_CACHE);
  // jemalloc where the system has it (simplebankAllocatorEnv looks), nothing preloaded where it has not.
  assert.equal(seen.preload, simplebankAllocatorEnv({}).LD_PRELOAD);
  for (const flag of SIMPLEBANK_EMBEDDED_NODE_ARGS) assert.ok(seen.execArgv.includes(flag), `${flag} missing`);
});

test("a process on another transport (a distributed one) gets the distributed processes' flags only", {
  skip: process.platform !== 'linux',
}, () => {
  const seen = settingsSeenBy({ CHASSIS_TRANSPORT: 'nats://127.0.0.1:4222' });
  assert.deepEqual(
    seen.execArgv.filter((arg) => [...SIMPLEBANK_NODE_ARGS, ...SIMPLEBANK_EMBEDDED_NODE_ARGS].includes(arg)),
    [...SIMPLEBANK_NODE_ARGS],
  );
  // jemalloc keeps freed pages longer there (see simplebankAllocatorEnv), where the system has it.
  if (seen.preload) assert.match(seen.mallocConf ?? '', /dirty_decay_ms:10000/);
  if (seen.preload) assert.match(settingsSeenBy({}).mallocConf ?? '', /dirty_decay_ms:1000,/);
});

test('a compile cache folder and an LD_PRELOAD given in the environment are kept when main.ts starts itself again', {
  skip: process.platform !== 'linux',
}, () => {
  const seen = settingsSeenBy({ NODE_COMPILE_CACHE: '/tmp/elsewhere', LD_PRELOAD: '' });
  assert.equal(seen.compileCache, '/tmp/elsewhere');
  assert.equal(seen.preload, '', 'an LD_PRELOAD given (even empty) is left alone');
});

test('a malloc setting given in the environment is kept, and nothing added: the process is not started again', () => {
  const seen = settingsSeenBy({ MALLOC_ARENA_MAX: '4' });
  assert.deepEqual(seen.env, { MALLOC_ARENA_MAX: '4' });
  for (const flag of SIMPLEBANK_EMBEDDED_NODE_ARGS) assert.ok(!seen.execArgv.includes(flag), `${flag} added anyway`);
});
