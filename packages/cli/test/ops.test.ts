import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { createTransport, MemoryBroker, memoryTransport, signToken } from '@chassis/core';
import { removeNatsTestState, removeRabbitmqTestState, servers, skipUnlessUp, waitUntil } from '@chassis/testing';
import { complete, splitWords } from '../src/ops/repl.ts';
import type { Output } from '../src/output.ts';
import { run } from '../src/program.ts';
import { JWT_SECRET, OPS_SECRET, type OpsApp, startOpsApp } from './fixtures/ops-app.ts';

/**
 * The commands that talk to a running system, against the embedded default (a node on the memory
 * transport, reached through its ops port), NATS and (for `call`) RabbitMQ. Most run in this process
 * through `run()` — the same code the bin runs, without half a second of start-up each; a few run as the
 * user runs them, the bin in a child, to see the exit code and that nothing but one line reaches stderr.
 */

// The tests pass credentials explicitly: the machine's must not open (or refuse) anything for them.
delete process.env.CHASSIS_OPS_SECRET;
delete process.env.CHASSIS_TOKEN;
delete process.env.CHASSIS_TRANSPORT;

const root = fileURLToPath(new URL('../../../', import.meta.url));
const bin = join(root, 'packages/cli/bin/chassis.js');

interface Ran {
  status: number;
  stdout: string;
  stderr: string;
}

async function chassis(args: string[]): Promise<Ran> {
  const out: string[] = [];
  const err: string[] = [];
  const output: Output = {
    out: (text) => out.push(text.endsWith('\n') ? text : `${text}\n`),
    say: (text) => err.push(text.endsWith('\n') ? text : `${text}\n`),
    style: (_format, text) => text,
  };
  const status = await run(args, { output });
  return { status, stdout: out.join(''), stderr: err.join('') };
}

/** The bin in a child process (asynchronously: the system it talks to runs in this process). */
function chassisBin(args: string[], options: { stdin?: string; env?: NodeJS.ProcessEnv } = {}): Promise<Ran> {
  const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1', ...options.env };
  delete env.NODE_TEST_CONTEXT;
  const child = spawn(process.execPath, [bin, ...args], { cwd: root, env });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk) => (stdout += chunk));
  child.stderr.on('data', (chunk) => (stderr += chunk));
  child.stdin.end(options.stdin ?? '');
  return new Promise((resolve) => child.on('close', (status) => resolve({ status: status ?? -1, stdout, stderr })));
}

/** A failure as the issue asks: one line that says what to do, a non-zero code, no stack trace. */
function assertOneLineError(ran: Ran, exitCode: number, pattern: RegExp): void {
  assert.equal(ran.status, exitCode, `exit code (stdout: ${ran.stdout} stderr: ${ran.stderr})`);
  const lines = ran.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `one line: ${ran.stderr}`);
  assert.match(lines[0]!, /^chassis: /);
  assert.match(lines[0]!, pattern);
  assert.doesNotMatch(ran.stderr, /\n\s+at /, 'no stack trace');
  assert.equal(ran.stdout, '');
}

function ok(ran: Ran): string {
  assert.equal(ran.status, 0, `exit 0 (stderr: ${ran.stderr})`);
  return ran.stdout;
}

function parse<T = Record<string, unknown>>(ran: Ran): T {
  return JSON.parse(ok(ran)) as T;
}

/**
 * Every command against one system. `connection` is the flags that reach it; `only` the service
 * filter that keeps a shared broker's other systems out of what is asked.
 */
function commandsSuite(
  name: string,
  start: () => Promise<{ app: OpsApp; connection: string[]; stop: () => Promise<void> }>,
) {
  describe(`chassis ops commands: ${name}`, () => {
    let app: OpsApp;
    let connection: string[];
    let stop: () => Promise<void>;
    let service: string;
    let withSecret: string[];
    let only: string[];
    const scratch = mkdtempSync(join(tmpdir(), 'chassis-ops-'));

    before(async () => {
      ({ app, connection, stop } = await start());
      service = app.service;
      withSecret = [...connection, '--secret', OPS_SECRET];
      only = ['--service', service];
    });
    after(async () => {
      await stop();
      rmSync(scratch, { recursive: true, force: true });
    });

    it('nodes, services, actions and events: a table, or JSON', async () => {
      const nodes = ok(await chassis(['nodes', ...withSecret, ...only]));
      assert.match(nodes, /^NODE\s+HOST\s+PID\s+TRANSPORT/);
      assert.match(nodes, new RegExp(`${app.node.id}.*${service}`));
      const nodesJson = parse<{ nodeId: string }[]>(await chassis(['nodes', '--json', ...withSecret, ...only]));
      assert.deepEqual(
        nodesJson.map((n) => n.nodeId),
        [app.node.id],
      );

      assert.match(
        ok(await chassis(['services', ...withSecret, ...only])),
        new RegExp(`${service}\\s+0\\.0\\.0\\s+1\\s+1\\s+1`),
      );
      assert.match(
        ok(await chassis(['actions', ...withSecret, ...only])),
        new RegExp(`${service}\\.hello\\s+no.*Says hello`),
      );
      const actions = parse<{ name: string; input: { properties: object } }[]>(
        await chassis(['actions', '--json', ...withSecret, ...only]),
      );
      assert.deepEqual(Object.keys(actions[0]!.input.properties), ['name'], 'the input as JSON Schema');
      const events = ok(await chassis(['events', ...withSecret, ...only]));
      assert.match(events, new RegExp(`${service}\\.waved\\s+handles\\s+${service}\\s+${service}\\.waved`));
      assert.match(events, new RegExp(`${service}\\.waved\\s+emits`));
    });

    it('call: the output as JSON, the caller’s token passed on; errors with code and fields, exit 1', async () => {
      assert.deepEqual(parse(await chassis(['call', `${service}.hello`, '{"name":"ada"}', ...withSecret])), {
        text: 'hello ada',
        caller: null,
      });
      const token = await signToken(JWT_SECRET, { sub: 'alice', roles: ['customer'] });
      const file = join(scratch, 'input.json');
      writeFileSync(file, '{"name":"bob"}');
      assert.deepEqual(
        parse(
          await chassis(['call', `${service}.hello`, `@${file}`, ...withSecret, '--token', token, '--timeout', '5000']),
        ),
        { text: 'hello bob', caller: 'alice' },
      );
      assertOneLineError(
        await chassis(['call', `${service}.hello`, '{"name":""}', ...withSecret]),
        1,
        /VALIDATION: .*name: Too small/,
      );
      assertOneLineError(
        await chassis(['call', `${service}.nope`, '{}', ...withSecret]),
        1,
        /UNKNOWN_ACTION: .*`chassis actions` lists/,
      );
      assertOneLineError(
        await chassis(['call', `nosuch${service}.thing`, '{}', ...withSecret, '--timeout', '2000']),
        1,
        /NO_SERVICE|TIMEOUT/,
      );
      assertOneLineError(
        await chassis(['call', `${service}.hello`, '{name:', ...withSecret]),
        2,
        /not JSON.*single quotes/,
      );
      assertOneLineError(
        await chassis(['call', `${service}.hello`, '@/nonexistent/input.json', ...withSecret]),
        2,
        /Cannot read input from \/nonexistent\/input\.json: ENOENT/,
      );
      // --node: the call made from that node, through its ops API.
      assert.deepEqual(
        parse(await chassis(['call', `${service}.hello`, '{"name":"cy"}', ...withSecret, '--node', app.node.id])),
        { text: 'hello cy', caller: null },
      );
    });

    it('emit, a dead letter, dlq list / show / replay (failing, then handled) / purge', async () => {
      const emitted = parse(await chassis(['emit', `${service}.waved`, '{"by":"dora"}', ...withSecret]));
      assert.equal(emitted.emitted, true);
      assertOneLineError(
        await chassis(['emit', `${service}.waved`, '{"by":3}', ...withSecret]),
        1,
        /VALIDATION: .*by: /,
      );
      assertOneLineError(
        await chassis(['emit', `${service}.unheard`, '{}', ...withSecret]),
        1,
        /No running service handles or emits the event .*`chassis events` lists/,
      );

      const queue = `${service}.waved`;
      await waitUntil(async () => (await app.node.transport.countDeadLetters(queue)) === 1, { timeoutMs: 15_000 });
      assert.match(ok(await chassis(['dlq', 'list', ...withSecret, ...only])), new RegExp(`${queue}\\s+event\\s+1`));
      const shown = parse<{ count: number; letters: { id: string; payload: unknown }[] }>(
        await chassis(['dlq', 'show', queue, '--json', ...withSecret]),
      );
      assert.equal(shown.count, 1);
      assert.deepEqual(shown.letters[0]!.payload, { by: 'dora' });
      assert.match(ok(await chassis(['dlq', 'show', queue, ...withSecret])), /"by":"dora"/);

      const failing = await chassis(['dlq', 'replay', queue, ...withSecret]);
      assert.equal(failing.status, 1, failing.stderr);
      assert.match(failing.stdout, /0 handled, 1 still failing, 1 left/);
      assert.match(failing.stdout, /cannot handle a wave by dora yet/);

      app.fix(true);
      const replayed = parse<{ handled: string[]; remaining: number }>(
        await chassis(['dlq', 'replay', queue, '--json', ...withSecret]),
      );
      assert.deepEqual(replayed.handled, [shown.letters[0]!.id]);
      assert.equal(replayed.remaining, 0);
      assert.deepEqual(app.handled, ['dora']);
      app.fix(false);

      assertOneLineError(await chassis(['dlq', 'purge', queue, ...withSecret]), 2, /--id .* or --all/);
      await chassis(['emit', `${service}.waved`, '{"by":"eve"}', ...withSecret]);
      await waitUntil(async () => (await app.node.transport.countDeadLetters(queue)) === 1, { timeoutMs: 15_000 });
      assert.match(ok(await chassis(['dlq', 'purge', queue, '--all', ...withSecret])), /removed 1, 0 left/);
      assertOneLineError(
        await chassis(['dlq', 'replay', `rpc.${service}`, ...withSecret]),
        1,
        /No running node runs the subscription/,
      );
    });

    it('health, outbox, and sagas: list, show, retry a failed one, abort a running one', async () => {
      assert.match(ok(await chassis(['health', ...withSecret, ...only])), new RegExp(`${app.node.id}\\s+pass\\s+pass`));
      assert.match(ok(await chassis(['outbox', ...withSecret, ...only])), new RegExp(`${service}\\s+0\\s+-\\s+0`));

      const runner = app.runner();
      const done = await app.startSaga('complete');
      assert.equal((await runner.wait(done, 10_000)).status, 'completed');
      const failed = await app.startSaga('fail');
      assert.equal((await runner.wait(failed, 10_000)).status, 'failed');

      const listed = parse<{ service: string; instances: { id: string; status: string }[] }[]>(
        await chassis(['sagas', 'list', '--json', ...withSecret, ...only]),
      );
      assert.deepEqual(
        listed[0]!.instances.map((i) => [i.id, i.status]).sort(),
        [
          [done, 'completed'],
          [failed, 'failed'],
        ].sort(),
      );
      const table = ok(await chassis(['sagas', 'list', '--status', 'failed', ...withSecret, ...only]));
      assert.match(table, new RegExp(`${failed}\\s+${service}\\s+transfer\\s+failed\\s+reserve`));
      assert.doesNotMatch(table, new RegExp(done));
      const shown = parse<{ id: string; history: { kind: string }[] }>(
        await chassis(['sagas', 'show', done, ...withSecret, ...only]),
      );
      assert.equal(shown.history.at(-1)?.kind, 'saga_completed');

      assertOneLineError(await chassis(['sagas', 'abort', failed, ...withSecret, ...only]), 1, /CONFLICT: /);
      app.compensation.failing = false;
      const retried = parse<{ status: string }>(await chassis(['sagas', 'retry', failed, ...withSecret, ...only]));
      assert.equal(retried.status, 'compensating');
      assert.equal((await runner.wait(failed, 10_000)).status, 'compensated');

      const held = await app.startSaga('hold');
      await waitUntil(
        async () =>
          parse<{ currentStep?: string }>(await chassis(['sagas', 'show', held, ...withSecret, ...only]))
            .currentStep === 'hold',
        { timeoutMs: 10_000 },
      );
      const aborted = parse<{ status: string }>(
        await chassis(['sagas', 'abort', held, '--reason', 'the customer cancelled', ...withSecret, ...only]),
      );
      assert.equal(aborted.status, 'compensating');
      assert.equal((await runner.wait(held, 10_000)).status, 'compensated');

      assertOneLineError(
        await chassis(['sagas', 'show', 'no-such-saga', ...withSecret, ...only]),
        1,
        /No saga no-such-saga on any running node/,
      );
    });

    it('bench: throughput and latency percentiles', async () => {
      const result = parse<{ calls: number; errors: number; perSecond: number; latencyMs: Record<string, number> }>(
        await chassis([
          'bench',
          `${service}.hello`,
          '{"name":"x"}',
          '--seconds',
          '1',
          '--concurrency',
          '4',
          '--json',
          ...withSecret,
        ]),
      );
      assert.ok(result.calls > 10, `calls: ${result.calls}`);
      assert.equal(result.errors, 0);
      assert.ok(result.latencyMs.p50! > 0 && result.latencyMs.p50! <= result.latencyMs.p99!);
      const table = ok(await chassis(['bench', `${service}.hello`, '{"name":"x"}', '--seconds', '1', ...withSecret]));
      assert.match(table, /latency\s+p50 [\d.]+ ms\s+p90 [\d.]+ ms\s+p99 [\d.]+ ms/);
      assertOneLineError(
        await chassis(['bench', `${service}.hello`, '{}', '--seconds', '1', ...withSecret]),
        1,
        /VALIDATION: .*name/,
      );
    });

    it('refuses without credentials, with a wrong secret, and a token without the admin role', async () => {
      assertOneLineError(
        await chassis(['services', ...connection, ...only]),
        1,
        /UNAUTHENTICATED: .*--secret or CHASSIS_OPS_SECRET/,
      );
      assertOneLineError(
        await chassis([
          'dlq',
          'purge',
          `${service}.waved`,
          '--all',
          ...connection,
          '--secret',
          'wrong-secret-0123456789',
        ]),
        1,
        /UNAUTHENTICATED: The ops secret does not match/,
      );
      const customer = await signToken(JWT_SECRET, { sub: 'alice', roles: ['customer'] });
      assertOneLineError(
        await chassis(['actions', ...connection, ...only, '--token', customer]),
        1,
        /FORBIDDEN: .*admin role/,
      );
      assertOneLineError(
        await chassis(['actions', ...connection, ...only, '--token', 'not-a-token']),
        1,
        /UNAUTHENTICATED: .*--token or CHASSIS_TOKEN/,
      );
      const admin = await signToken(JWT_SECRET, { sub: 'ops', roles: ['admin'] });
      assert.match(ok(await chassis(['actions', ...connection, ...only, '--token', admin])), /hello/);
    });

    it('as the user runs it: the bin, its exit codes and one-line errors; the repl', async () => {
      const called = await chassisBin(['call', `${service}.hello`, '{"name":"fay"}', ...withSecret]);
      assert.deepEqual(JSON.parse(ok(called)), { text: 'hello fay', caller: null });
      assertOneLineError(await chassisBin(['call', `${service}.hello`, '{"name":', ...withSecret]), 2, /not JSON/);
      assertOneLineError(await chassisBin(['services', ...connection, ...only]), 1, /UNAUTHENTICATED/);
      // The secret from the environment, as an operator sets it once.
      assert.match(
        ok(await chassisBin(['services', ...connection, ...only], { env: { CHASSIS_OPS_SECRET: OPS_SECRET } })),
        new RegExp(service),
      );

      const history = join(scratch, 'history');
      const repl = await chassisBin(['repl', ...withSecret], {
        stdin: `services ${only.join(' ')}\ncall ${service}.hello {"name": "gus"}\nnope\ncall ${service}.hello {"name": ""}\nexit\n`,
        env: { CHASSIS_HISTORY: history },
      });
      assert.match(repl.stdout, new RegExp(`${service}\\s+0\\.0\\.0`));
      assert.match(repl.stdout, /"text": "hello gus"/);
      assert.match(repl.stderr, /unknown command 'nope'/);
      assert.match(repl.stderr, /VALIDATION/);
      assert.doesNotMatch(repl.stderr, /\n\s+at /);
      assert.match(readFileSync(history, 'utf8'), new RegExp(`call ${service}.hello \\{"name": "gus"\\}`));
    });
  });
}

commandsSuite('embedded (memory transport, ops port)', async () => {
  const app = await startOpsApp(memoryTransport({ broker: new MemoryBroker() }), randomBytes(3).toString('hex'), {
    opsPort: 0,
  });
  return { app, connection: ['--ops', `http://127.0.0.1:${app.node.opsPort}`], stop: () => app.node.stop() };
});

const natsSkip = await skipUnlessUp('nats');
if (natsSkip) {
  describe('chassis ops commands: NATS', { skip: natsSkip }, () => {
    it('runs on NATS', () => {});
  });
} else {
  commandsSuite('NATS', async () => {
    const suffix = randomBytes(3).toString('hex');
    const url = servers.nats.url;
    const app = await startOpsApp(await createTransport(url), suffix);
    return {
      app,
      connection: ['--transport', url],
      stop: async () => {
        await app.node.stop();
        await removeNatsTestState(url, [suffix]);
      },
    };
  });
}

describe('chassis call: RabbitMQ', async () => {
  const skip = await skipUnlessUp('rabbitmq');
  const suffix = randomBytes(3).toString('hex');
  const url = servers.rabbitmq.url;
  let app: OpsApp;
  before(async () => {
    if (!skip) app = await startOpsApp(await createTransport(url), suffix);
  });
  after(async () => {
    if (skip) return;
    await app.node.stop();
    await removeRabbitmqTestState(url, [suffix]);
  });

  it('calls an action, and fails with the code and fields, an unknown action or service, a refused --node', {
    skip,
  }, async () => {
    const connection = ['--transport', url];
    assert.deepEqual(parse(await chassis(['call', `${app.service}.hello`, '{"name":"ada"}', ...connection])), {
      text: 'hello ada',
      caller: null,
    });
    assertOneLineError(
      await chassis(['call', `${app.service}.hello`, '{"name":""}', ...connection]),
      1,
      /VALIDATION: .*name/,
    );
    assertOneLineError(await chassis(['call', `${app.service}.nope`, '{}', ...connection]), 1, /UNKNOWN_ACTION/);
    assertOneLineError(
      await chassis(['call', `nosuch${suffix}.thing`, '{}', ...connection, '--timeout', '2000']),
      1,
      /NO_SERVICE|TIMEOUT/,
    );
    assertOneLineError(
      await chassis(['call', `${app.service}.hello`, '{"name":"ada"}', ...connection, '--node', app.node.id]),
      1,
      /UNAUTHENTICATED/,
    );
    assert.deepEqual(
      parse(
        await chassis([
          'call',
          `${app.service}.hello`,
          '{"name":"bo"}',
          ...connection,
          '--node',
          app.node.id,
          '--secret',
          OPS_SECRET,
        ]),
      ),
      { text: 'hello bo', caller: null },
    );
  });
});

describe('chassis ops commands: no system there', () => {
  it('an unreachable broker or ops port is one line that says what to do', async () => {
    assertOneLineError(
      await chassisBin(['services', '--transport', 'nats://127.0.0.1:1', '--secret', OPS_SECRET]),
      1,
      /Cannot reach the broker at nats:\/\/127\.0\.0\.1:1: is it running\?/,
    );
    assertOneLineError(
      await chassis(['nodes', '--ops', 'http://127.0.0.1:1', '--secret', OPS_SECRET]),
      1,
      /UNAVAILABLE: Cannot reach the ops port at http:\/\/127\.0\.0\.1:1/,
    );
    assertOneLineError(await chassis(['nodes', '--ops', '127.0.0.1:9400']), 2, /not an http:\/\/ URL/);
  });

  it('the repl completes commands, actions and events, and reads JSON without quotes', () => {
    const names = { actions: ['accounts.open', 'accounts.get', 'orders.place'], events: ['accounts.opened'] };
    assert.deepEqual(complete('ca', names), [['call'], 'ca']);
    assert.deepEqual(complete('dlq re', names), [['replay'], 're']);
    assert.deepEqual(complete('call accounts.', names), [['accounts.open', 'accounts.get'], 'accounts.']);
    assert.deepEqual(complete('emit acc', names), [['accounts.opened'], 'acc']);
    assert.deepEqual(splitWords(`call a.b {"x": "y z", "n": [1, 2]} --token 't k'`), [
      'call',
      'a.b',
      '{"x": "y z", "n": [1, 2]}',
      '--token',
      't k',
    ]);
  });
});
