import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { CliError, type Output } from '../output.ts';
import { appFiles, MARKERS, routeLines, type ServiceNames, serviceFiles, serviceNames } from '../templates.ts';
import { CHASSIS_ROOT, findApp, workspaceRootOf } from '../workspace.ts';

/** A Kubernetes name (the app's objects and Deployments are named after it), a service name, a folder. */
const NAME = /^[a-z]([a-z0-9-]*[a-z0-9])?$/;

export function checkName(name: string, what: 'app' | 'service'): void {
  const example = what === 'app' ? 'notebook' : 'book-loans';
  if (!NAME.test(name) || name.length > 40) {
    throw new CliError(
      `"${name}" is not a valid ${what} name: use lower-case letters, digits and "-", start with a letter, at most 40 characters (e.g. ${example})`,
      { usage: true },
    );
  }
  if (what === 'service' && name === 'test-listener') {
    throw new CliError('"test-listener" is the name the generated tests give their listener: choose another', {
      usage: true,
    });
  }
}

export interface NewAppOptions {
  /** Where to create it; default `apps/<name>` inside a workspace with `apps/*`, else `./<name>`. */
  dir?: string;
  /** Its first service. */
  service: string;
  /** The Chassis checkout the app depends on through `file:` when it is not one of its workspaces. */
  chassis?: string;
  cwd?: string;
}

function workspaceGlobs(root: string): string[] {
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { workspaces?: unknown };
  return Array.isArray(pkg.workspaces) ? pkg.workspaces.filter((glob): glob is string => typeof glob === 'string') : [];
}

/** The folder a new app goes to, and the workspace whose `apps/*` it joins, if it does. */
export function placeApp(name: string, options: { dir?: string; cwd: string }): { dir: string; workspace?: string } {
  const root = workspaceRootOf(options.cwd);
  const appsWorkspace = root && workspaceGlobs(root).includes('apps/*') ? root : undefined;
  const dir = options.dir
    ? resolve(options.cwd, options.dir)
    : join(appsWorkspace ?? options.cwd, appsWorkspace ? 'apps' : '', name);
  if (appsWorkspace && dirname(dir) === join(appsWorkspace, 'apps')) return { dir, workspace: appsWorkspace };
  return { dir };
}

function checkChassisCheckout(path: string, cwd: string): string {
  const root = resolve(cwd, path);
  const core = join(root, 'packages', 'core', 'package.json');
  if (!existsSync(core) || !readFileSync(core, 'utf8').includes('"@chassis/core"')) {
    throw new CliError(
      `${root} is not a Chassis checkout (no packages/core/package.json of @chassis/core): --chassis takes the folder of the chassis repository`,
      { usage: true },
    );
  }
  return root;
}

function writeFiles(dir: string, files: ReadonlyMap<string, string>): void {
  for (const [path, text] of files) {
    const file = join(dir, path);
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, text, { flag: 'wx' });
  }
}

/**
 * Formats what was written with the workspace's biome, when it has one, so that generated code and the
 * lines inserted into existing files (imports in order) pass `npm run lint`. Best effort: an app outside
 * any checkout with biome is left as the templates wrote it, which is already formatted.
 */
function formatWithBiome(dir: string, paths: readonly string[]): void {
  for (let current = dir; ; current = dirname(current)) {
    const biome = join(current, 'node_modules', '.bin', 'biome');
    if (existsSync(biome)) {
      spawnSync(biome, ['check', '--write', '--no-errors-on-unmatched', ...paths], { cwd: current, stdio: 'ignore' });
      return;
    }
    if (dirname(current) === current) return;
  }
}

export function newApp(name: string, options: NewAppOptions, output: Output): string {
  checkName(name, 'app');
  checkName(options.service, 'service');
  const cwd = options.cwd ?? process.cwd();
  const { dir, workspace } = placeApp(name, { ...(options.dir ? { dir: options.dir } : {}), cwd });
  if (existsSync(dir) && readdirSync(dir).length > 0) {
    throw new CliError(`${relative(cwd, dir) || dir} already exists and is not empty: choose another name or --dir`);
  }
  const chassis = workspace ?? checkChassisCheckout(options.chassis ?? CHASSIS_ROOT, cwd);
  const chassisDependency = workspace
    ? () => '*'
    : (pkg: string) => `file:${relative(dir, join(chassis, 'packages', pkg))}`;
  const files = appFiles({
    app: name,
    chassisDependency,
    tsconfigBase: relative(dir, join(chassis, 'tsconfig.base.json')),
    service: serviceNames(options.service),
  });
  writeFiles(dir, files);
  formatWithBiome(dir, [dir]);
  const shown = relative(cwd, dir) || '.';
  output.say(`${output.style('green', 'created')} ${shown}: the app ${name} with the service ${options.service}`);
  if (workspace) {
    output.say(`  a workspace of ${workspace}: run npm install there once to add it to package-lock.json`);
  } else if (!dir.startsWith(chassis)) {
    output.say(`  it uses the Chassis packages of ${chassis} (file: dependencies): run npm install in ${shown}`);
  }
  output.say(`next:\n  cd ${shown}\n  npm test\n  npx chassis dev\n  npx chassis new service <name>`);
  return dir;
}

export interface NewServiceOptions {
  /** The app's folder or name; default the app around the current folder. */
  app?: string;
  cwd?: string;
}

/** The line of `file` that is exactly `marker` (trimmed), or an error that says what to add by hand. */
function markerLine(file: string, text: string, marker: string, service: ServiceNames): number {
  const index = text.split('\n').findIndex((line) => line.trim() === marker);
  if (index < 0) {
    throw new CliError(
      `${file} has no line "${marker}", where the new service's lines go: put it back, or add ${service.name} to ${file} by hand`,
    );
  }
  return index;
}

const MODULE_LINE = /^(import|export) .* from '([^']+)';$/;

/**
 * Inserts `lines` above the marker line, indented like it. A single import or export line goes among the
 * one-line relative imports (exports) right above the marker in the order of their modules, as biome keeps them.
 */
function insertAbove(text: string, index: number, lines: readonly string[]): string {
  const all = text.split('\n');
  const indent = /^\s*/.exec(all[index] ?? '')?.[0] ?? '';
  let at = index;
  const module = lines.length === 1 ? MODULE_LINE.exec(lines[0]!) : null;
  if (module) {
    const moduleOf = (line: string | undefined) => (line === undefined ? undefined : MODULE_LINE.exec(line));
    for (
      let above = moduleOf(all[at - 1]);
      above && above[1] === module[1] && above[2]!.startsWith('.') && above[2]! > module[2]!;
    ) {
      at--;
      above = moduleOf(all[at - 1]);
    }
  }
  all.splice(at, 0, ...lines.map((line) => `${indent}${line}`));
  return all.join('\n');
}

export function newService(name: string, options: NewServiceOptions, output: Output): string {
  checkName(name, 'service');
  const cwd = options.cwd ?? process.cwd();
  const app = findApp(options.app, cwd);
  const service = serviceNames(name);
  const files = serviceFiles(service);
  for (const path of [`services/${name}`, ...files.keys()]) {
    if (existsSync(join(app.dir, path))) {
      throw new CliError(`${relative(cwd, join(app.dir, path))} already exists: ${app.name} has a service ${name}`);
    }
  }
  // Every edit is planned before anything is written: a missing marker leaves the app as it was.
  const edits: { path: string; marker: string; lines: string[] }[] = [
    {
      path: 'contracts/index.ts',
      marker: MARKERS.contracts,
      lines: [`export * as ${service.camel} from './${name}.ts';`],
    },
    {
      path: 'src/services.ts',
      marker: MARKERS.serviceImports,
      lines: [`import { ${service.camel}Service } from '../services/${name}/service.ts';`],
    },
    { path: 'src/services.ts', marker: MARKERS.services, lines: [`${service.camel}Service(),`] },
    {
      path: 'src/gateway.ts',
      marker: MARKERS.routeImports,
      lines: [`import * as ${service.camel}Api from '../contracts/${name}.ts';`],
    },
    { path: 'src/gateway.ts', marker: MARKERS.routes, lines: routeLines(service) },
  ];
  const texts = new Map<string, string>();
  for (const edit of edits) {
    const file = join(app.dir, edit.path);
    if (!existsSync(file)) {
      throw new CliError(
        `${relative(cwd, file)} does not exist: chassis new service adds services to apps made by chassis new app`,
      );
    }
    const text = texts.get(edit.path) ?? readFileSync(file, 'utf8');
    texts.set(edit.path, insertAbove(text, markerLine(edit.path, text, edit.marker, service), edit.lines));
  }
  writeFiles(app.dir, files);
  for (const [path, text] of texts) writeFileSync(join(app.dir, path), text);
  formatWithBiome(
    app.dir,
    [...new Set([...files.keys(), ...texts.keys()])].map((path) => join(app.dir, path)),
  );
  const shown = relative(cwd, app.dir) || '.';
  output.say(
    `${output.style('green', 'added')} the service ${name} to ${shown}: contracts/${name}.ts, services/${name}/ (handler, migration, test), its routes POST and GET /${name}`,
  );
  return join(app.dir, 'services', name);
}
