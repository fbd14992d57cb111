import { existsSync, readdirSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { CliError } from './output.ts';

/** The Chassis checkout this command runs from: where `--chassis` points by default. */
export const CHASSIS_ROOT = realpathSync(fileURLToPath(new URL('../../../', import.meta.url)));

/**
 * What an app tells the `chassis` command about itself, in its package.json's `"chassis"` field:
 *
 * ```json
 * "chassis": { "main": "src/main.ts", "gateway": "src/gateway.ts#api", "topology": "src/topology.ts#topology" }
 * ```
 *
 * `main` is what `chassis dev` runs; `gateway` names an export `{ routes, openapi, prefix? }` (the route
 * table and the OpenAPI title and version the app gives `createGateway`) for `chassis openapi`; `topology`
 * an `AppTopology` of `@chassis/deploy`, or a function `(image?) => AppTopology`, for `chassis deploy render`.
 */
export interface App {
  /** Absolute folder of the app. */
  dir: string;
  /** The package's name. */
  name: string;
  main: string;
  gateway: string | undefined;
  topology: string | undefined;
}

interface PackageJson {
  name?: unknown;
  workspaces?: unknown;
  chassis?: { main?: unknown; gateway?: unknown; topology?: unknown };
}

function readPackage(dir: string): PackageJson | undefined {
  const file = join(dir, 'package.json');
  if (!existsSync(file)) return undefined;
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as PackageJson;
  } catch (error) {
    throw new CliError(`${file} is not valid JSON: ${(error as Error).message}`);
  }
}

function isDirectory(path: string): boolean {
  return existsSync(path) && statSync(path).isDirectory();
}

/** The npm workspace root (a package.json with `workspaces`) at or above `dir`, if any. */
export function workspaceRootOf(dir: string): string | undefined {
  for (let current = resolve(dir); ; current = dirname(current)) {
    if (Array.isArray(readPackage(current)?.workspaces)) return current;
    if (dirname(current) === current) return undefined;
  }
}

function appAt(dir: string): App | undefined {
  const pkg = readPackage(dir);
  if (!pkg || typeof pkg.chassis !== 'object' || pkg.chassis === null) return undefined;
  const text = (value: unknown, field: string) => {
    if (value === undefined) return undefined;
    if (typeof value !== 'string' || value === '') {
      throw new CliError(`${join(dir, 'package.json')}: "chassis.${field}" must be a path, e.g. "src/main.ts"`);
    }
    return value;
  };
  return {
    dir,
    name: typeof pkg.name === 'string' ? pkg.name : dir,
    main: text(pkg.chassis.main, 'main') ?? 'src/main.ts',
    gateway: text(pkg.chassis.gateway, 'gateway'),
    topology: text(pkg.chassis.topology, 'topology'),
  };
}

/** The apps (folders with a `"chassis"` package.json field) under a workspace's `apps/`. */
export function appsIn(root: string): App[] {
  const apps = join(root, 'apps');
  if (!isDirectory(apps)) return [];
  return readdirSync(apps)
    .filter((name) => !name.startsWith('.'))
    .map((name) => appAt(join(apps, name)))
    .filter((app): app is App => app !== undefined);
}

/**
 * The app a command works on: `given` is its folder or the name of one under `apps/`; without it, the app
 * whose folder holds the current one, or the only app of the workspace.
 */
export function findApp(given: string | undefined, cwd = process.cwd()): App {
  const root = workspaceRootOf(cwd) ?? CHASSIS_ROOT;
  const known = () => {
    const apps = appsIn(root).map((app) => relative(cwd, app.dir) || '.');
    return apps.length > 0 ? `apps here: ${apps.join(', ')}` : `there is no app under ${join(root, 'apps')}`;
  };
  if (given !== undefined) {
    for (const candidate of [resolve(cwd, given), join(root, 'apps', given)]) {
      if (!isDirectory(candidate)) continue;
      const app = appAt(candidate);
      if (app) return app;
      throw new CliError(
        `${candidate} has no "chassis" field in its package.json, so it is not a Chassis app (chassis new app makes one); ${known()}`,
        { usage: true },
      );
    }
    throw new CliError(`no app "${given}": give an app's folder or the name of one in apps/; ${known()}`, {
      usage: true,
    });
  }
  for (let current = resolve(cwd); ; current = dirname(current)) {
    const app = appAt(current);
    if (app) return app;
    if (dirname(current) === current) break;
  }
  const apps = appsIn(root);
  if (apps.length === 1) return apps[0]!;
  throw new CliError(`which app? name one (e.g. chassis dev apps/<name>); ${known()}`, { usage: true });
}

/**
 * An export an app names as `path#export` (the export defaulting to `fallback`), imported from the app.
 * The app's own imports resolve from its folder, as when it runs.
 */
export async function importFromApp(app: App, reference: string, fallback: string): Promise<unknown> {
  const [path = '', exportName = fallback] = reference.split('#');
  const file = resolve(app.dir, path);
  if (!existsSync(file)) throw new CliError(`${file} (named in ${app.name}'s package.json) does not exist`);
  const module = (await import(pathToFileURL(file).href)) as Record<string, unknown>;
  if (!(exportName in module)) {
    throw new CliError(
      `${relative(process.cwd(), file)} has no export "${exportName}" (it has: ${Object.keys(module).join(', ') || 'none'})`,
    );
  }
  return module[exportName];
}
