import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { dashboardConnection } from '@chassis/cli';
import { action, callOpsHttp, createNode, createTransport, defineService, handle } from '@chassis/core';
import { type Simplebank, startSimplebank } from '@chassis/simplebank/system';
import { freePort, servers, skipUnlessInstalled, skipUnlessUp, waitUntil } from '@chassis/testing';
import { type Browser, chromium, type Page } from 'playwright-core';
import { z } from 'zod';
import { OPS_SECRET, startOpsApp } from '../../cli/test/fixtures/ops-app.ts';
import { type Dashboard, startDashboard } from '../src/index.ts';

/**
 * The dashboard in Debian's Chromium against the embedded SimpleBank (every service in this process, the
 * memory transport, PGlite in a temporary folder), reached through its ops port as `chassis dashboard
 * --ops` reaches it. One system, one dashboard server and one browser for every test. Each view is
 * photographed into test/artifacts/ (git-ignored).
 */

// The test passes its credentials itself: the machine's must not open (or refuse) anything for it.
delete process.env.CHASSIS_OPS_SECRET;
delete process.env.CHASSIS_TOKEN;
delete process.env.CHASSIS_TRANSPORT;

const CHROMIUM = '/usr/bin/chromium';
const skip = skipUnlessInstalled('chromium', 'apt-get install chromium; .ci/run installs it');
const artifacts = fileURLToPath(new URL('./artifacts/', import.meta.url));
const bin = fileURLToPath(new URL('../../cli/bin/chassis.js', import.meta.url));
const secret = randomBytes(18).toString('base64url');

describe('the dashboard in a browser, against SimpleBank', { skip }, () => {
  let bank: Simplebank;
  let ops: string;
  let dashboard: Dashboard;
  let browser: Browser;
  let page: Page;
  const dataDir = mkdtempSync(join(tmpdir(), 'chassis-dashboard-'));
  // The order the explorer places, under an id the test picks so that a dead letter can name it first.
  const orderId = randomUUID();
  let traceHref: string | null = null;

  const asOperator = (action: string, input: unknown = {}) => callOpsHttp(ops, action, input, { secret });
  const call = (action: string, input: unknown, token?: string) =>
    asOperator('call', { action, input, ...(token ? { token } : {}) });
  const shoot = (name: string) => page.screenshot({ path: join(artifacts, `${name}.png`) });
  const go = async (hash: string) => {
    await page.goto(`${dashboard.url}#/${hash}`);
    await page.getByRole('heading', { level: 1 }).waitFor();
  };
  const selectAction = async (name: string) => {
    await page.getByLabel('Action', { exact: true }).selectOption(name);
  };
  const callWith = async (input: string) => {
    await page.getByLabel('Input (JSON, pre-filled from the contract)').fill(input);
    // By keyboard: the Call button takes focus and Enter presses it.
    await page.getByRole('button', { name: 'Call', exact: true }).focus();
    await page.keyboard.press('Enter');
  };

  before(async () => {
    mkdirSync(artifacts, { recursive: true });
    const opsPort = await freePort();
    bank = await startSimplebank({
      port: 0,
      databaseUrl: `pglite://${dataDir}`,
      env: {
        CHASSIS_TRANSPORT: 'memory',
        OPS_PORT: String(opsPort),
        CHASSIS_OPS_SECRET: secret,
        OTEL_TRACES_SAMPLER_ARG: '1',
        LOG_LEVEL: 'silent',
      },
    });
    ops = `http://127.0.0.1:${opsPort}`;
    dashboard = await startDashboard({
      connection: dashboardConnection({ ops, secret }),
      port: 0,
      metricsEveryMs: 1_000,
    });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-quic',
        '--no-first-run',
        '--disable-sync',
      ],
    });
    page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    page.setDefaultTimeout(10_000);
    const failures: string[] = [];
    page.on('pageerror', (error) => failures.push(error.message));
    page.on('requestfailed', (request) => {
      // Nothing leaves the machine: every request goes to the dashboard server.
      if (!request.url().startsWith(dashboard.url)) failures.push(`outside request ${request.url()}`);
    });
    after(() => assert.deepEqual(failures, [], 'no script error and no request outside the dashboard'));
  });

  after(async () => {
    await browser?.close();
    await dashboard?.close();
    await bank?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('the catalog lists the 13 services, their contracts, and filters them', async () => {
    await go('catalog');
    await page.getByRole('heading', { name: /13 services/ }).waitFor();
    assert.equal(await page.locator('.service-list li').count(), 13);
    await page.getByRole('link', { name: /^orders/ }).click();
    const orders = page.getByRole('article', { name: 'Service orders' });
    await orders.getByText('orders.sellShares').click();
    const schema = await orders.getByLabel('orders.sellShares input schema').textContent();
    assert.match(schema ?? '', /"accountId"/, 'the input contract as JSON Schema');
    await orders.getByText('market.trade_executed').first().waitFor();
    await shoot('catalog');
    // By keyboard: from the search box, Tab reaches the first service; Enter opens it; focus is visible.
    await page.getByLabel('Find a service, action or event').focus();
    await page.keyboard.press('Tab');
    const focused = page.locator('.service-list a:focus');
    assert.match((await focused.textContent()) ?? '', /^account-transactions/);
    // (The test has no DOM types: the browser's getComputedStyle is reached through globalThis.)
    const outline = await focused.evaluate(
      (el) =>
        (globalThis as unknown as { getComputedStyle(e: unknown): { outlineStyle: string } }).getComputedStyle(el)
          .outlineStyle,
    );
    assert.equal(outline, 'solid', 'focus is visible');
    await page.keyboard.press('Tab');
    await page.keyboard.press('Enter');
    await page.getByRole('article', { name: 'Service alerts' }).waitFor();
    await page.getByLabel('Find a service, action or event').fill('payment');
    const names = await page.locator('.service-list .name').allTextContents();
    assert.deepEqual(names, ['account-transactions', 'notifications', 'payments', 'place-strategy-orders']);
  });

  it('the explorer emits an event; one no handler can take becomes a dead letter', async () => {
    await go('explorer');
    await page.getByLabel('Event', { exact: true }).selectOption('fees.fee_charged');
    // A fee for an order that does not exist yet: the orders service refuses it for good (NOT_FOUND).
    await page
      .getByLabel('Payload (JSON)')
      .fill(JSON.stringify({ orderId, accountId: '101', symbol: 'BHP', fee: '1.00' }));
    await page.getByRole('button', { name: 'Emit' }).click();
    await page.getByRole('status').filter({ hasText: '"emitted": true' }).waitFor();
    await waitUntil(
      async () => {
        const queues = (await asOperator('dlq.list')) as { queue: string; count: number }[];
        return queues.some((q) => q.queue === 'orders.fee_charged' && q.count === 1);
      },
      { timeoutMs: 15_000, what: 'the dead letter in orders.fee_charged' },
    );
  });

  it('the explorer logs in, places a sell order and shows the answer, with a link to its trace', async () => {
    await go('explorer');
    await selectAction('identity.issueToken');
    await callWith(JSON.stringify({ username: 'alice', password: 'alice-password' }));
    await page.getByRole('status').filter({ hasText: 'access_token' }).waitFor();
    await page.getByRole('button', { name: 'Use this token for the next calls' }).click();
    assert.match(await page.getByLabel(/Caller's token/).inputValue(), /^eyJ/);

    await selectAction('orders.sellShares');
    const prefilled = JSON.parse(await page.getByLabel('Input (JSON, pre-filled from the contract)').inputValue());
    assert.deepEqual(
      Object.keys(prefilled),
      ['accountId', 'symbol', 'quantity', 'orderId'],
      'pre-filled from the contract',
    );
    await callWith(JSON.stringify({ accountId: '101', symbol: 'BHP', quantity: 5, orderId }));
    const answer = page.getByRole('status').filter({ hasText: orderId });
    await answer.waitFor();
    assert.match((await answer.textContent()) ?? '', /"status": "(created|placed|completed)"/);
    traceHref = await page.getByRole('link', { name: /See its trace/ }).getAttribute('href');
    assert.match(traceHref ?? '', /^#\/traces\/[0-9a-f]{32}$/);
    await shoot('explorer');
  });

  it('a contract violation shows the field errors; invalid JSON says so and sends nothing', async () => {
    await go('explorer');
    await selectAction('orders.sellShares');
    await callWith(JSON.stringify({ accountId: 'x', quantity: -1 }));
    const fields = page.getByRole('table', { name: 'Field errors' });
    await fields.waitFor();
    const rows = await fields.locator('tbody tr td:first-child').allTextContents();
    assert.deepEqual(rows.sort(), ['accountId', 'quantity', 'symbol']);
    await page.getByRole('alert').filter({ hasText: 'VALIDATION' }).waitFor();
    await shoot('explorer-field-errors');

    await callWith('{"accountId": "101", oops');
    const alert = page.getByRole('alert').filter({ hasText: 'not valid JSON' });
    await alert.waitFor();
    assert.match((await alert.textContent()) ?? '', /Not sent/);
    assert.equal(
      await page.getByRole('heading', { name: 'API explorer' }).isVisible(),
      true,
      'the page is still there',
    );
  });

  it('the Queues view replays the dead letter, now that its order exists, and it is handled', async () => {
    const alice = (
      (await call('identity.issueToken', { username: 'alice', password: 'alice-password' })) as {
        access_token: string;
      }
    ).access_token;
    await waitUntil(
      async () => ((await call('orders.getOrder', { orderId }, alice)) as { status: string }).status === 'completed',
      { timeoutMs: 20_000, what: 'the sell order to complete' },
    );
    await go('queues');
    await page.getByRole('link', { name: 'orders.fee_charged' }).click();
    const letters = page.locator('.letters li');
    await letters.first().waitFor();
    assert.equal(await letters.count(), 1);
    assert.match((await letters.first().textContent()) ?? '', /NOT_FOUND/);
    await shoot('queues');
    await page.getByRole('button', { name: 'Replay all' }).click();
    await page.getByRole('status').filter({ hasText: 'Replayed 1: 1 handled, 0 failed again, 0 left' }).waitFor();
    await page.getByText('No dead letter in this queue.').waitFor();
    const queues = (await asOperator('dlq.list')) as { queue: string; count: number }[];
    assert.equal(queues.find((q) => q.queue === 'orders.fee_charged')?.count, 0);

    // A fee for an order that never comes: purged from the view, one letter at a time.
    await asOperator('emit', {
      event: 'fees.fee_charged',
      payload: { orderId: randomUUID(), accountId: '101', symbol: 'BHP', fee: '1.00' },
    });
    await letters.first().waitFor({ timeout: 15_000 });
    await letters.first().getByRole('button', { name: 'Purge' }).click();
    await page.getByRole('status').filter({ hasText: 'Purged 1, 0 left' }).waitFor();
    await page.getByText('No dead letter in this queue.').waitFor();
  });

  it("the Sagas view shows an investment order's saga, filtered by state, with its steps", async () => {
    const token = async (username: string) =>
      ((await call('identity.issueToken', { username, password: `${username}-password` })) as { access_token: string })
        .access_token;
    const [admin, alice] = [await token('admin'), await token('alice')];
    const strategy = (await call(
      'investment-strategies.createStrategy',
      { name: 'all in BHP', assets: [{ assetId: 'BHP', percentage: 100 }] },
      admin,
    )) as { id: string };
    const payment = (await call('payments.createPayment', { accountId: '101', amount: '50.00' }, alice)) as {
      id: string;
    };
    const investment = (await call(
      'place-strategy-orders.invest',
      { strategyId: strategy.id, destinationAccountId: '101', amount: '50.00', paymentId: payment.id },
      alice,
    )) as { id: string };

    await go('sagas');
    await page.getByLabel('State').selectOption('completed');
    const link = page.locator(`a[href="#/sagas/${investment.id}"]`);
    await link.waitFor({ timeout: 20_000 });
    await link.click();
    const history = page.getByRole('list', { name: 'Saga history' });
    await history.getByText('saga completed').waitFor({ timeout: 20_000 });
    const steps = await history.locator('li strong').allTextContents();
    assert.deepEqual(
      steps.filter((s) => s.startsWith('step')),
      ['step started', 'step completed'],
    );
    assert.match((await history.textContent()) ?? '', /step place-orders/);
    assert.equal(
      await page.getByRole('button', { name: 'Abort' }).isDisabled(),
      true,
      'a completed saga cannot be aborted',
    );
    await shoot('sagas');
  });

  it('the Sagas view retries a failed saga and aborts a running one', async () => {
    // The CLI's ops tests' tiny system: a saga that fails (its compensation failing until fixed) or holds.
    const opsPort = await freePort();
    const app = await startOpsApp(await createTransport('memory'), randomBytes(3).toString('hex'), { opsPort });
    const connection = dashboardConnection({ ops: `http://127.0.0.1:${opsPort}`, secret: OPS_SECRET });
    const sagas = await startDashboard({ connection, port: 0, metricsEveryMs: 0 });
    const runner = app.runner();
    try {
      const failed = await app.startSaga('fail');
      assert.equal((await runner.wait(failed, 10_000)).status, 'failed');
      await page.goto(`${sagas.url}#/sagas`);
      await page.getByLabel('State').selectOption('failed');
      await page.locator(`a[href="#/sagas/${failed}"]`).click();
      const history = page.getByRole('list', { name: 'Saga history' });
      await history.getByText('saga failed').waitFor();
      assert.equal(
        await page.getByRole('button', { name: 'Abort' }).isDisabled(),
        true,
        'a failed saga is not running',
      );
      app.compensation.failing = false;
      await page.getByRole('button', { name: 'Retry' }).click();
      await page.getByRole('status').filter({ hasText: 'Retried: now compensating' }).waitFor();
      assert.equal((await runner.wait(failed, 10_000)).status, 'compensated');
      await history.getByText('saga retried').waitFor();

      const held = await app.startSaga('hold');
      await waitUntil(
        async () =>
          (
            (await callOpsHttp(`http://127.0.0.1:${opsPort}`, 'sagas.show', { id: held }, { secret: OPS_SECRET })) as {
              currentStep?: string;
            }
          ).currentStep === 'hold',
        { timeoutMs: 10_000, what: 'the saga to hold in its step' },
      );
      await page.goto(`${sagas.url}#/sagas/${held}`);
      await page.getByLabel('State').selectOption('running');
      await page.getByRole('button', { name: 'Abort' }).click();
      await page.getByRole('status').filter({ hasText: 'Aborted: now compensating' }).waitFor();
      assert.equal((await runner.wait(held, 10_000)).status, 'compensated');
    } finally {
      await sagas.close();
      await connection.close();
      await app.node.stop();
    }
  });

  it('the trace of the sell order: a waterfall of the services it crossed', async () => {
    assert.ok(traceHref, 'the explorer linked the trace');
    await go(traceHref!.slice(2));
    let services: string[] = [];
    await waitUntil(
      async () => {
        await page.getByRole('button', { name: 'Refresh' }).click();
        services = [...new Set(await page.locator('.waterfall .service-chip').allTextContents())];
        return services.length >= 3;
      },
      { timeoutMs: 15_000, intervalMs: 500, what: 'spans of several services in the waterfall' },
    );
    assert.ok(services.includes('orders'), `the order's service among ${services.join(', ')}`);
    await shoot('traces');
    await go('traces');
    await page.locator('table.traces tbody tr').first().waitFor();
    await shoot('traces-list');
  });

  it('the topology draws services, calls and topics, with instances per node', async () => {
    await go('topology');
    await page.locator('.graph canvas').first().waitFor();
    await page.getByRole('table').filter({ hasText: 'Node' }).getByText('13:').waitFor();
    const links = page.locator('ul.links li');
    await page.getByLabel('Find a service or topic').fill('orders');
    assert.ok(await links.filter({ hasText: 'calls' }).count(), 'calls are listed');
    assert.ok(await links.filter({ hasText: 'publishes' }).count(), 'publishing is listed');
    await page.getByLabel('Find a service or topic').fill('');
    await page.getByRole('heading', { level: 1 }).focus();
    // The graph is drawn once its layout has run.
    await page.waitForTimeout(500);
    await shoot('topology');
  });

  it('health: the node, its readiness checks, breakers, and RED sparklines per action', async () => {
    await go('health');
    await page.getByRole('table').filter({ hasText: 'Transport' }).getByText('memory').waitFor();
    await page.getByText('database:connection').waitFor();
    await page.getByText(/\d+ breakers: \d+ closed/).waitFor();
    await page.getByText('Every breaker and bulkhead').click();
    await page.getByRole('cell', { name: 'exchange', exact: true }).waitFor();
    await page.getByText('Every breaker and bulkhead').click();
    await page.getByLabel('Find an action').fill('sellShares');
    await page.locator('table.red tbody tr').filter({ hasText: 'orders.sellShares' }).waitFor({ timeout: 15_000 });
    assert.ok(await page.locator('table.red svg.spark').count(), 'sparklines drawn');
    await page.getByLabel('Find an action').fill('');
    await page.getByRole('heading', { level: 1 }).focus();
    await shoot('health');
  });

  it("the dashboard's API: the page's header required, bad requests refused with a code, no file outside its build", async () => {
    const api = (path: string, init: RequestInit = {}) => fetch(new URL(path, dashboard.url), init);
    const page = { 'x-chassis-dashboard': '1' };
    const forbidden = await api('api/ops/nodes', { method: 'POST' });
    assert.equal(forbidden.status, 403, "no header: another site's page cannot use it");
    assert.equal(((await forbidden.json()) as { error: { code: string } }).error.code, 'FORBIDDEN');
    const notJson = await api('api/ops/nodes', { method: 'POST', headers: page, body: '{oops' });
    assert.equal(notJson.status, 400);
    assert.equal(((await notJson.json()) as { error: { code: string } }).error.code, 'VALIDATION');
    const unknown = await api('api/ops/no/such', { method: 'POST', headers: page, body: '{}' });
    assert.equal(((await unknown.json()) as { error: { code: string } }).error.code, 'UNKNOWN_ACTION');
    assert.equal(unknown.status, 404);
    const refused = await api('api/ops/dlq/show', { method: 'POST', headers: page, body: '{"input":{}}' });
    assert.equal(refused.status, 400, "the ops API's VALIDATION comes through with its status");
    assert.equal((await api('api/nothing', { headers: page })).status, 404);
    assert.equal((await api('%2e%2e/package.json')).status, 404, 'nothing outside dist/ is served');
    assert.equal((await api('assets/none.js')).status, 404);
    const index = await api('');
    assert.match(index.headers.get('content-security-policy') ?? '', /default-src 'self'/);
    const each = (await (await api('api/each/services', { method: 'POST', headers: page, body: '{}' })).json()) as {
      nodeId: string;
      output: { name: string }[];
    }[];
    assert.equal(each.length, 1);
    assert.equal(each[0]!.output.length, 13);
  });

  it('chassis dashboard serves it from the command line until SIGTERM', async () => {
    const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1', CHASSIS_OPS_SECRET: secret };
    delete env.NODE_TEST_CONTEXT;
    const child = spawn(process.execPath, [bin, 'dashboard', '--ops', ops, '--port', '0'], { env });
    let said = '';
    child.stderr.on('data', (chunk) => (said += chunk));
    child.stdout.resume();
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      await waitUntil(() => /dashboard +http:\/\/127\.0\.0\.1:\d+\//.test(said), {
        timeoutMs: 20_000,
        what: 'the URL chassis dashboard prints',
      });
      const url = /(http:\/\/127\.0\.0\.1:\d+\/)/.exec(said)![1]!;
      const status = (await (await fetch(`${url}api/status`, { headers: { 'x-chassis-dashboard': '1' } })).json()) as {
        reachable: boolean;
      };
      assert.equal(status.reachable, true, 'the secret came from CHASSIS_OPS_SECRET');
    } finally {
      child.kill('SIGTERM');
    }
    assert.equal(await exited, 0, said);
  });

  it('stays usable with 50 services: the catalog filters them, the topology lays them out', async () => {
    const services = Array.from({ length: 50 }, (_, i) => {
      const name = `service${String(i).padStart(2, '0')}`;
      const next = `service${String((i + 1) % 50).padStart(2, '0')}`;
      const get = action(`${name}.get`, { input: z.object({ id: z.string() }), output: z.object({ id: z.string() }) });
      const getNext = action(`${next}.get`, {
        input: z.object({ id: z.string() }),
        output: z.object({ id: z.string() }),
      });
      return defineService({ name, uses: [getNext], actions: [handle(get, ({ id }) => ({ id }))] });
    });
    const opsPort = await freePort();
    const node = createNode({
      services,
      transport: await createTransport('memory'),
      opsSecret: secret,
      opsPort,
      logLevel: 'silent',
    });
    await node.start();
    const connection = dashboardConnection({ ops: `http://127.0.0.1:${opsPort}`, secret });
    const many = await startDashboard({ connection, port: 0, metricsEveryMs: 0 });
    try {
      await page.goto(`${many.url}#/catalog`);
      await page.getByRole('heading', { name: /50 services/ }).waitFor();
      await page.getByLabel('Find a service, action or event').fill('service42');
      assert.deepEqual(await page.locator('.service-list .name').allTextContents(), ['service42']);
      await page.goto(`${many.url}#/topology`);
      await page.locator('.graph canvas').first().waitFor();
      await page.getByLabel('Find a service or topic').fill('service07');
      assert.equal(await page.locator('ul.links li').count(), 2, 'service06 calls service07, which calls service08');
      await page.waitForTimeout(300);
      await shoot('topology-50-services');
    } finally {
      await many.close();
      await connection.close();
      await node.stop();
    }
  });

  it('without a reachable system it says so plainly: the ops port down, the broker down', async () => {
    const unreachable = [
      { flags: { ops: `http://127.0.0.1:${await freePort()}`, secret }, says: /Cannot reach the ops port/ },
      { flags: { transport: `nats://127.0.0.1:${await freePort()}`, secret }, says: /Cannot reach the broker/ },
    ];
    for (const [index, { flags, says }] of unreachable.entries()) {
      const connection = dashboardConnection(flags);
      const down = await startDashboard({ connection, port: 0, metricsEveryMs: 0 });
      try {
        await page.goto(`${down.url}#/catalog`);
        const banner = page.getByRole('alert').filter({ hasText: 'The system is not reachable' });
        await banner.waitFor({ timeout: 15_000 });
        assert.match((await banner.textContent()) ?? '', says);
        if (index === 0) await shoot('unreachable');
      } finally {
        await down.close();
        await connection.close();
      }
    }
  });
});

describe('the dashboard through a broker (NATS)', async () => {
  const skipNats = await skipUnlessUp('nats');
  it("finds the system's nodes through the broker, calls through it, and reads each node's /metrics", {
    skip: skipNats,
  }, async () => {
    // A node of its own on the shared broker; the others there (other tests) are left out by name.
    const service = `dashboard${randomBytes(3).toString('hex')}`;
    const hello = action(`${service}.hello`, {
      input: z.object({ name: z.string().min(1) }),
      output: z.object({ text: z.string() }),
    });
    const node = createNode({
      services: [defineService({ name: service, actions: [handle(hello, ({ name }) => ({ text: `hello ${name}` }))] })],
      transport: await createTransport(servers.nats.url),
      opsSecret: secret,
      opsPort: 0,
      logLevel: 'silent',
    });
    await node.start();
    const connection = dashboardConnection({ transport: servers.nats.url, secret });
    const served = await startDashboard({ connection, port: 0, metricsEveryMs: 300 });
    const post = async (path: string, body: unknown) =>
      (await fetch(new URL(`api/${path}`, served.url), {
        method: 'POST',
        headers: { 'x-chassis-dashboard': '1', 'content-type': 'application/json' },
        body: JSON.stringify(body),
      })) as Response;
    try {
      const status = (await (
        await fetch(new URL('api/status', served.url), { headers: { 'x-chassis-dashboard': '1' } })
      ).json()) as { kind: string; reachable: boolean; nodeIds: string[]; error?: unknown };
      assert.equal(status.kind, 'broker');
      assert.equal(status.reachable, true, JSON.stringify(status.error));
      assert.ok(status.nodeIds.includes(node.id), 'the node, heard through the broker');
      const answers = (await (await post('each/services', { input: { service } })).json()) as {
        nodeId: string;
        output?: { name: string }[];
      }[];
      assert.deepEqual(
        answers.filter((a) => a.output?.length).map((a) => [a.nodeId, a.output![0]!.name]),
        [[node.id, service]],
      );
      const called = await post('ops/call', { service, input: { action: hello.name, input: { name: 'ada' } } });
      assert.deepEqual(await called.json(), { text: 'hello ada' });
      await waitUntil(
        async () => {
          await post('ops/call', { service, input: { action: hello.name, input: { name: 'bo' } } });
          const red = (await (
            await fetch(new URL('api/red', served.url), { headers: { 'x-chassis-dashboard': '1' } })
          ).json()) as { action: string; nodeId: string }[];
          return red.some((r) => r.action === hello.name && r.nodeId === node.id);
        },
        { timeoutMs: 10_000, intervalMs: 200, what: "the node's RED figures from its /metrics" },
      );
    } finally {
      await served.close();
      await connection.close();
      await node.stop();
    }
  });
});
