import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { promisify } from 'node:util';
import { parse } from 'yaml';

/**
 * An app's Docker Compose file (`deploy/compose/…/docker-compose.yml`) as its tests read it: the way
 * Compose reads it, and through docker-compose itself, which validates without a Docker engine.
 */

const run = promisify(execFile);

/** What the tests read of a service. */
export interface ComposeService {
  image?: string;
  build?: { context: string; dockerfile: string; args?: Record<string, string> };
  command?: string[];
  environment?: Record<string, string>;
  ports?: string[];
  volumes?: string[];
  healthcheck?: { test: string[] };
  depends_on?: Record<string, { condition: string }>;
  stop_grace_period?: string;
  read_only?: boolean;
}

export interface ComposeFile {
  services: Record<string, ComposeService>;
}

export interface ComposeProject {
  /** The folder of the Compose file, absolute: its relative paths start here. */
  readonly dir: string;
  /** The Compose file, absolute. */
  readonly file: string;
  /** The file as Compose reads it: the `<<:` keys its services share settings with resolved. */
  read(): Promise<ComposeFile>;
  /** The host paths the services mount (named volumes aside), relative to the repository, each with its target. */
  mounts(compose: ComposeFile): Map<string, string>;
  /**
   * That no secret is committed: each of `secrets` (name → its value in the file) is a required variable
   * (`${NAME:?…}`), `.env.example` lists it, and git ignores the `.env` it is read from.
   */
  assertSecretsUncommitted(secrets: Readonly<Record<string, string | undefined>>): Promise<void>;
  /**
   * That Compose starts each node once what it needs is healthy, and `last` (the edge) after every other
   * node: each of `nodes` waits for each of `dependencies` to be healthy (each has a healthcheck), and is
   * itself healthy when ready on its ops port (`/health/ready` on `OPS_PORT`, as Kubernetes' probe asks).
   */
  assertStartOrder(
    compose: ComposeFile,
    order: { nodes: readonly string[]; dependencies: readonly string[]; last: string },
  ): void;
  /**
   * docker-compose's own reading of the file, anchors and merges resolved, after `config -q` has found it
   * valid — with `.env.example` as the env file, or with an empty one and no environment but PATH (a
   * checkout before its `.env` is written: it rejects, with docker-compose's message in `stderr`). The
   * env file is made in a temporary folder, never beside the Compose file.
   */
  config(env: 'example' | 'empty'): Promise<ComposeFile>;
}

/** The Compose file in `dir` (relative to `repo`, the repository's root), named docker-compose.yml. */
export function composeProject(repo: string, dir: string): ComposeProject {
  const root = resolve(repo);
  const absolute = join(root, dir);
  const file = join(absolute, 'docker-compose.yml');
  return {
    dir: absolute,
    file,
    read: async () => parse(await readFile(file, 'utf8'), { merge: true }) as ComposeFile,
    mounts(compose) {
      const mounted = new Map<string, string>();
      for (const service of Object.values(compose.services)) {
        for (const volume of service.volumes ?? []) {
          const [source = '', target = ''] = volume.split(':');
          if (!source.startsWith('.') && !source.startsWith('/')) continue; // a named volume
          mounted.set(relative(root, resolve(absolute, source)), target);
        }
      }
      return mounted;
    },
    async assertSecretsUncommitted(secrets) {
      const example = await readFile(join(absolute, '.env.example'), 'utf8');
      for (const [name, value] of Object.entries(secrets)) {
        assert.match(value ?? '', new RegExp(`^\\$\\{${name}:\\?`), name);
        assert.match(example, new RegExp(`^${name}=`, 'm'), `.env.example lists ${name}`);
      }
      const envFile = join(dir, '.env');
      const ignored = await run('git', ['check-ignore', envFile], { cwd: root });
      assert.equal(ignored.stdout.trim(), envFile);
    },
    assertStartOrder(compose, { nodes, dependencies, last }) {
      for (const name of nodes) {
        const service = compose.services[name];
        const probe = service?.healthcheck?.test.join(' ') ?? '';
        assert.ok(
          probe.includes(`http://127.0.0.1:${service?.environment?.OPS_PORT}/health/ready`),
          `${name}: ${probe}`,
        );
        for (const dependency of dependencies) {
          assert.equal(service?.depends_on?.[dependency]?.condition, 'service_healthy', `${name} → ${dependency}`);
          assert.ok(compose.services[dependency]?.healthcheck, `${dependency} has a healthcheck`);
        }
      }
      for (const name of nodes.filter((node) => node !== last)) {
        const condition = compose.services[last]?.depends_on?.[name]?.condition;
        assert.equal(condition, 'service_healthy', `${last} starts after ${name}`);
      }
    },
    async config(env) {
      const scratch = await mkdtemp(join(tmpdir(), 'chassis-compose-'));
      try {
        const envFile = join(scratch, '.env');
        if (env === 'example') await copyFile(join(absolute, '.env.example'), envFile);
        else await writeFile(envFile, '');
        const args = ['--env-file', envFile, '--project-directory', absolute, '-f', file, 'config'];
        const options = { cwd: scratch, ...(env === 'empty' ? { env: { PATH: process.env.PATH ?? '' } } : {}) };
        await run('docker-compose', [...args, '-q'], options);
        return parse((await run('docker-compose', args, options)).stdout) as ComposeFile;
      } finally {
        await rm(scratch, { recursive: true, force: true });
      }
    },
  };
}
