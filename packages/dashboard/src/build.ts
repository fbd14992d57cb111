import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ChassisError } from '@chassis/core';

/** The browser app's sources (Preact, TSX) and where Vite writes the built assets (git-ignored). */
export const WEB_DIR = fileURLToPath(new URL('../web/', import.meta.url));
export const DIST_DIR = fileURLToPath(new URL('../dist/', import.meta.url));

/** The newest modification time under a folder, in ms. */
function newestChange(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestChange(path) : statSync(path).mtimeMs);
  }
  return newest;
}

/** Whether dist/ holds a build at least as new as every source file. */
export function isBuilt(): boolean {
  const index = join(DIST_DIR, 'index.html');
  return existsSync(index) && statSync(index).mtimeMs >= newestChange(WEB_DIR);
}

let building: Promise<void> | undefined;

/**
 * Builds the browser app with Vite's JS API when dist/ is missing or older than the sources: a fresh
 * clone runs `npm install` on whatever Node the machine has (Vite needs a newer one than some machines'),
 * so the build happens at first serve, on the Node that serves it, instead of in an install script.
 * Vite writes to a folder of its own, renamed into place, so a server that reads dist/ meanwhile (or a
 * second build racing this one) never sees half a build.
 */
export function ensureBuilt(options: { force?: boolean } = {}): Promise<void> {
  if (!options.force && isBuilt()) return Promise.resolve();
  building ??= build().finally(() => {
    building = undefined;
  });
  return building;
}

async function build(): Promise<void> {
  const { build: viteBuild } = await import('vite');
  const outDir = `${DIST_DIR.replace(/\/$/, '')}.${process.pid}.${Date.now()}`;
  try {
    await viteBuild({
      root: WEB_DIR,
      // Relative asset URLs: the dashboard may be mounted under a path (a gateway's admin route).
      base: './',
      configFile: false,
      logLevel: 'warn',
      clearScreen: false,
      // Preact's JSX through Vite's own transform: no React plugin needed.
      oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
      build: { outDir, emptyOutDir: true, sourcemap: false, chunkSizeWarningLimit: 4096, reportCompressedSize: false },
    });
    mkdirSync(DIST_DIR, { recursive: true });
    const old = `${outDir}.old`;
    try {
      renameSync(DIST_DIR, old);
      renameSync(outDir, DIST_DIR);
    } catch (error) {
      // Another process (a second dashboard starting at the same time) put its build in place first.
      if (!isBuilt()) throw error;
    }
    rmSync(old, { recursive: true, force: true });
    rmSync(outDir, { recursive: true, force: true });
  } catch (error) {
    rmSync(outDir, { recursive: true, force: true });
    throw new ChassisError('INTERNAL', `Building the dashboard failed: ${(error as Error).message}`, { cause: error });
  }
}
