#!/usr/bin/env node
// The `chassis` command's launcher. It is JavaScript, not TypeScript, because it must start on whatever
// `node` the shebang finds: `npx chassis` puts the project's node_modules/.bin (and the Node 24 that
// `npm install` brought there) first on PATH, but `./node_modules/.bin/chassis` from a shell, or a
// global link, runs the machine's node, which may be too old to run TypeScript (Node 20 here). On such
// a node this re-runs the command with the project's own Node; on Node 22.18+ it imports the CLI.
import { spawn } from 'node:child_process';
import { existsSync, realpathSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = dirname(realpathSync(fileURLToPath(import.meta.url)));
const main = join(here, '..', 'src', 'main.ts');
const [major, minor] = process.versions.node.split('.').map(Number);
const runsTypeScript = major > 22 || (major === 22 && minor >= 18);

/** The first node_modules/.bin/node above the CLI's own folder (the workspace's Node 24). */
function projectNode() {
  for (let dir = here; ; dir = dirname(dir)) {
    const candidate = join(dir, 'node_modules', '.bin', 'node');
    if (existsSync(candidate) && realpathSync(candidate) !== realpathSync(process.execPath)) return candidate;
    if (dirname(dir) === dir) return undefined;
  }
}

if (runsTypeScript) {
  await import(pathToFileURL(main).href);
} else {
  const node = projectNode();
  if (!node) {
    console.error(
      `chassis: RUNTIME_TOO_OLD: the chassis command needs Node 22.18 or newer and this is ${process.version} (${process.execPath}); ` +
        'run `npm install` in the project (it brings Node 24 into node_modules/.bin) or install Node 22.18+.',
    );
    process.exit(1);
  }
  const child = spawn(node, [main, ...process.argv.slice(2)], { stdio: 'inherit' });
  // Ctrl-C reaches the child from the terminal itself; this process only waits and passes on what it
  // is sent alone (a SIGTERM from a supervisor), so the child drains instead of being orphaned.
  process.on('SIGINT', () => {});
  process.on('SIGTERM', () => child.kill('SIGTERM'));
  child.on('exit', (code, signal) => {
    process.exitCode = code ?? (signal ? 128 + 1 : 1);
  });
  child.on('error', (error) => {
    console.error(`chassis: could not start ${node}: ${error.message}`);
    process.exitCode = 1;
  });
}
